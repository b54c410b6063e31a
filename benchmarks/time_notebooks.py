"""How long each notebook takes to run, as the README's ``notebook_times`` figure reports:
``jupyter nbconvert --execute`` in the notebooks folder, smoke (``CNNLAB_FAST=1
CNNLAB_OFFLINE=1``) and full (``CNNLAB_FAST=0`` on the real CIFAR-10 copy).

    python benchmarks/time_notebooks.py --smoke 00 01 ... --full 00 01 05 ...

Prints the machine line, then one line per notebook and mode. The executed notebooks go
to a temporary folder; the checkout's notebooks are not modified. A notebook that fails
is reported as failed, with the end of nbconvert's output.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import DEFAULT_DATA, ROOT, add_data_argument, machine_line, real_cifar10

from cnnlab.figures import duration


def run(notebook: Path, env: dict, out: Path, timeout_s: int) -> tuple[float, str]:
    """Seconds to execute ``notebook`` with nbconvert, and "" or the failure."""
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "jupyter", "nbconvert", "--to", "notebook", "--execute",
         f"--ExecutePreprocessor.timeout={timeout_s}", "--output-dir", str(out), notebook.name],
        cwd=notebook.parent, env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    seconds = time.perf_counter() - start
    return seconds, "" if done.returncode == 0 else done.stderr[-1500:]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", nargs="*", default=[], help="notebook numbers, e.g. 00 01")
    parser.add_argument("--full", nargs="*", default=[], help="notebook numbers, e.g. 00 01")
    parser.add_argument("--timeout", type=int, default=3600, help="per cell, in seconds")
    add_data_argument(parser)
    args = parser.parse_args()
    print(machine_line())
    notebooks = {p.name[:2]: p for p in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))}
    out = Path(tempfile.mkdtemp(prefix="cnnlab-times-"))
    base = {k: v for k, v in os.environ.items() if not k.startswith("CNNLAB_")}
    modes = [("smoke", n, base | {"CNNLAB_FAST": "1", "CNNLAB_OFFLINE": "1"}) for n in args.smoke]
    if args.full:
        data = real_cifar10(args.data if args.data else DEFAULT_DATA)
        modes += [("full", n, base | {"CNNLAB_FAST": "0", "CNNLAB_CIFAR10_DIR": str(data)})
                  for n in args.full]  # fmt: skip
    for mode, number, env in modes:
        seconds, failure = run(notebooks[number], env, out / mode, args.timeout)
        status = f"FAILED after {duration(seconds)}:\n{failure}" if failure else duration(seconds)
        print(f"{number} {mode:<5} {status}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

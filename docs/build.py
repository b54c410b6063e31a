"""Build the course's website into ``_site/``: the README, every notebook with its outputs,
the glossary and the API reference, as static pages that work offline.

    python docs/build.py smoke     # minutes: notebooks in smoke mode, a banner on every page
    python docs/build.py full      # the real course: real CIFAR-10, full trainings, no banner

Executed notebooks are cached in ``_build/site-cache/<mode>/`` by their code cells'
content (``docs/executed.py``): a rebuild re-runs only the notebooks whose code changed
(``--rerun`` runs them all, ``--rerun 07`` one). ``pytest`` fills the smoke cache as it tests the notebooks.
Needs ``pip install -e ".[site]"``. Nothing is downloaded while building: the build runs
with an unreachable proxy, so any attempt fails loudly instead of fetching.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from executed import (  # noqa: E402
    MODES,
    NOTEBOOKS,
    OFFLINE_NOTE,
    ROOT,
    WEIGHTS_NOTE,
    cached,
    machine,
    uses_pretrained_weights,
)
from pages import assemble, repository  # noqa: E402

NO_NETWORK = {k: "http://127.0.0.1:9" for k in ("http_proxy", "https_proxy", "HTTP_PROXY",
                                                 "HTTPS_PROXY")}  # fmt: skip


def stand_in_weights(folder: Path) -> None:
    """Random weights saved where torchvision looks for each architecture's downloaded
    ImageNet weights (``$TORCH_HOME/hub/checkpoints``), for a full build offline."""
    import torch
    from torchvision.models import get_model, get_model_weights

    from cnnlab.transfer import ARCHITECTURES

    checkpoints = folder / "hub" / "checkpoints"
    checkpoints.mkdir(parents=True, exist_ok=True)
    for arch in ARCHITECTURES:
        weights = get_model_weights(arch)
        for member in weights:
            path = checkpoints / Path(member.url).name
            if path.exists():
                continue
            extra = {"aux_logits": True, "init_weights": False} \
                if arch in ("googlenet", "inception_v3") else {}  # fmt: skip
            model = get_model(arch, weights=None, **extra)
            torch.save(model.state_dict(), path)


def kernel_env(mode: str, args: argparse.Namespace, jobs: int) -> tuple[dict, list[str]]:
    """The CNNLAB_* switches (and threads) the notebooks run under, and the notes every
    chapter of this build carries."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CNNLAB_")} | MODES[mode]
    notes: list[str] = []
    if mode == "full":
        env["CNNLAB_OFFLINE"] = "0"
        if args.cifar10:
            env["CNNLAB_CIFAR10_DIR"] = str(Path(args.cifar10).resolve())
        if args.stand_in_weights:
            folder = ROOT / "_build" / "stand-in-weights"
            stand_in_weights(folder)
            env["TORCH_HOME"] = str(folder)
            notes.append(WEIGHTS_NOTE)  # for the chapters that load pretrained weights
    if jobs > 1:  # each kernel its share of the cores, or they fight over them
        env["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // jobs))
    return env, notes


def run_notebooks(todo: list[Path], mode: str, env: dict, notes: list[str], jobs: int,
                  offline: list[str]) -> None:  # fmt: skip
    """Execute ``todo`` (``jobs`` at a time), each in its own process, and cache each one
    that passes, so that running the command again (after a failure or an interruption)
    runs only the rest. A failure stops the build once the others have run, with the
    failing cell's error. Notebooks numbered in ``offline`` run with ``CNNLAB_OFFLINE=1``
    and say so."""

    def one(notebook: Path) -> tuple[Path, float, str]:
        start = time.perf_counter()
        alone = notebook.name[:2] in offline
        said = [n for n in notes if n != WEIGHTS_NOTE or uses_pretrained_weights(notebook)]
        done = subprocess.run(
            [sys.executable, str(Path(__file__).parent / "executed.py"), str(notebook), mode,
             json.dumps(said + [OFFLINE_NOTE] * alone)],
            env=env | {"CNNLAB_OFFLINE": "1"} if alone else env, capture_output=True, text=True,
            check=False,
        )  # fmt: skip
        failure = "" if done.returncode == 0 else (done.stdout + done.stderr)[-4000:]
        return notebook, time.perf_counter() - start, failure

    failures = []
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        for notebook, seconds, failure in pool.map(one, todo):
            print(f"  {notebook.name}: {'FAILED' if failure else 'ran'} in {seconds:.0f} s",
                  flush=True)  # fmt: skip
            if failure:
                failures.append(f"{notebook.name}:\n{failure}")
    if failures:
        raise SystemExit("a notebook failed, so the site was not built:\n\n" + "\n".join(failures))


def sphinx(source: Path, out: Path, mode: str, jobs: int) -> None:
    """Render ``source`` into ``out`` with Sphinx, offline. Sphinx works in ``_build``
    (MyST-NB writes the outputs' images next to its output folder) and ``out`` gets a copy."""
    site = json.dumps({"mode": mode, "repository": repository()})
    env = os.environ | NO_NETWORK | {"no_proxy": "", "NO_PROXY": "", "CNNLAB_SITE": site}
    html, doctrees = ROOT / "_build" / "html" / mode, ROOT / "_build" / "doctrees" / mode
    done = subprocess.run(
        [sys.executable, "-m", "sphinx", "-b", "html", "-q", "-E", "-j", str(jobs),
         "-d", str(doctrees), str(source), str(html)],
        env=env, check=False,
    )  # fmt: skip
    if done.returncode:
        raise SystemExit(f"Sphinx failed (exit {done.returncode}); its messages are above")
    if out.exists():
        shutil.rmtree(out)
    shutil.copytree(html, out, ignore=shutil.ignore_patterns(".buildinfo", ".doctrees"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=sorted(MODES))
    parser.add_argument("--out", type=Path, default=ROOT / "_site", help="default: %(default)s")
    parser.add_argument("--jobs", type=int, default=None,
                        help="notebooks run at once (default: 2 for smoke, 1 for full)")  # fmt: skip
    parser.add_argument("--rerun", nargs="*", metavar="NN", default=None,
                        help="run these chapters again (none named: all), e.g. after a change "
                        "to cnnlab itself, which the cache does not see")  # fmt: skip
    parser.add_argument("--require-cache", action="store_true",
                        help="fail instead of executing (CI: pytest has just run them all)")  # fmt: skip
    parser.add_argument("--cifar10", help="full: a CIFAR-10 ImageFolder copy or .tar.gz "
                        "(default: $CNNLAB_CIFAR10_DIR, else the download)")  # fmt: skip
    parser.add_argument("--offline-chapters", nargs="*", default=[], metavar="NN",
                        help="full, offline: chapters (e.g. 08) whose data cannot be "
                        "downloaded run with CNNLAB_OFFLINE=1, said on their page")  # fmt: skip
    parser.add_argument("--stand-in-weights", action="store_true",
                        help="full, offline: random weights where the pretrained ones go, "
                        "said on each chapter that loads them")  # fmt: skip
    args = parser.parse_args(argv)
    try:
        import myst_nb  # noqa: F401
        import sphinx_book_theme  # noqa: F401
    except ImportError as error:
        raise SystemExit(f'{error.name} is missing: pip install -e ".[site]"') from None
    if args.mode == "full" and not args.cifar10:
        args.cifar10 = os.environ.get("CNNLAB_CIFAR10_DIR")
    start = time.perf_counter()
    jobs = args.jobs or (2 if args.mode == "smoke" else 1)
    notebooks = sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
    again = [] if args.rerun is None else args.rerun or [nb.name[:2] for nb in notebooks]
    todo = [nb for nb in notebooks if nb.name[:2] in again or cached(nb, args.mode) is None]
    print(f"{args.mode} site on {machine()}: {len(notebooks) - len(todo)} notebooks from "
          f"the cache, {len(todo)} to run", flush=True)  # fmt: skip
    if todo and args.require_cache:
        names = ", ".join(nb.name for nb in todo)
        raise SystemExit(f"--require-cache: no executed copy of {names} matches its code "
                         "(did pytest run them in smoke mode, and pass?)")  # fmt: skip
    if todo:
        env, notes = kernel_env(args.mode, args, jobs)
        run_notebooks(todo, args.mode, env, notes, jobs, args.offline_chapters)
    executed = {nb: cached(nb, args.mode) for nb in notebooks}
    source = ROOT / "_build" / "site-src"
    made = assemble(executed, source)
    sphinx(source, args.out, args.mode, jobs)
    # what docs/check_site.py holds the pages to
    manifest = {"mode": args.mode, "figures": made["figures"]}
    (args.out / "site.json").write_text(json.dumps(manifest, indent=1), encoding="utf-8")
    pages = sum(
        not p.relative_to(args.out).parts[0].startswith("_") for p in args.out.rglob("*.html")
    )
    counts = made["counts"]
    chapters = [args.out / page for page in made["figures"]]
    counts["tables"] = sum(p.read_text(encoding="utf-8").count("<table") for p in chapters)
    print(f"{args.mode} site in {args.out}: {pages} pages, "
          + ", ".join(f"{v} {k}" for k, v in counts.items())
          + f"; {time.perf_counter() - start:.0f} s in all")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

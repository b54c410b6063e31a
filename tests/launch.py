"""Two training processes started from a test, as a learner starts them: ``torchrun
--standalone`` on this machine, with the offline and smoke switches and one torch thread
per process (two processes share the two cores)."""

from __future__ import annotations

import os
import subprocess
import sys

SWITCHES = {"CNNLAB_OFFLINE": "1", "CNNLAB_FAST": "1", "OMP_NUM_THREADS": "1"}


def torchrun(*args: object, nproc: int = 2, timeout: int = 300) -> subprocess.CompletedProcess:
    """Run ``torchrun --standalone --nproc_per_node=nproc *args``; fail the test with the
    processes' last messages if it fails.

    Example:
        >>> torchrun("my_script.py", "--epochs", 2).stdout  # doctest: +SKIP
    """
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               f"--nproc_per_node={nproc}", *map(str, args)]  # fmt: skip
    done = subprocess.run(command, env=os.environ | SWITCHES, capture_output=True, text=True,
                          timeout=timeout)  # fmt: skip
    assert done.returncode == 0, done.stderr[-4000:]
    return done

"""Root pytest configuration: notebooks run as quick, offline smoke runs.

nbval starts each notebook's kernel from this process, so the switches set here reach
the kernels. A value already in the environment wins (``CNNLAB_FAST=0 pytest notebooks``
executes the notebooks in full).

A notebook that passes in smoke mode is also stored, with its outputs, in the website's
cache (``docs/executed.py``), so ``python docs/build.py smoke`` after ``pytest`` renders
the pages without executing the notebooks a second time.
"""

import importlib.util
import os
import re
import time
from pathlib import Path

import nbval.plugin
import pytest
from nbval.kernel import RunningKernel

# keep_freed_memory()'s thresholds, for processes started from here (32 MiB is glibc's
# largest mmap threshold on 64-bit Linux)
KEEP_FREED = "glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=1073741824"
GLIBC_DEFAULTS = {"07_training_fast.ipynb"}  # counts page faults under glibc's defaults

os.environ.setdefault("CNNLAB_FAST", "1")
os.environ.setdefault("CNNLAB_OFFLINE", "1")
if os.environ.get("PYTEST_XDIST_WORKER"):
    # pytest-xdist runs one worker per core: one thread each (the notebook kernels they
    # start inherit it), or the workers' thread pools fight over the same cores.
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch

    torch.set_num_threads(1)
    # The workers keep freed memory for reuse, as cifar10_fast does on a CPU, and so do the
    # processes they start (notebook kernels, torchrun, the CLI), through glibc's tunables:
    # fewer page faults, 5 to 15% off the tests' time (measured 2026-12-01). What counts
    # page faults or memory starts with glibc's defaults (GLIBC_DEFAULTS, and the tests of
    # keep_freed_memory and of the server's memory, which clear the variable).
    from cnnlab.settings import keep_freed_memory

    keep_freed_memory()
    os.environ.setdefault("GLIBC_TUNABLES", KEEP_FREED)
# Text progress bars in the kernels (no widgets, as the website's builds run them),
# redrawn at most every 5 s.
os.environ.setdefault("TQDM_MININTERVAL", "5")
os.environ.setdefault("CNNLAB_PROGRESS", "text")


def _execute_as_jupyter_does(self, cell_input, allow_stdin=None):
    """nbval 0.11 sends cells with ``store_history=False``; IPython then ignores a cell's
    trailing ``;`` (it reads the cell back from the history), so a figure a cell returned
    showed twice. JupyterLab, Colab and nbclient store the history: so do we."""
    return self.kc.execute(cell_input, store_history=True, allow_stdin=allow_stdin,
                           stop_on_error=False)  # fmt: skip


RunningKernel.execute_cell_input = _execute_as_jupyter_does
_start_notebook = nbval.plugin.IPyNbFile.setup


def _start_with_glibc_defaults_where_counted(self):
    """Start the kernel of a notebook in GLIBC_DEFAULTS without the tunables."""
    saved = os.environ.get("GLIBC_TUNABLES")
    if self.fspath.basename in GLIBC_DEFAULTS and saved == KEEP_FREED:
        del os.environ["GLIBC_TUNABLES"]
    try:
        _start_notebook(self)
    finally:
        if saved is not None:
            os.environ["GLIBC_TUNABLES"] = saved


nbval.plugin.IPyNbFile.setup = _start_with_glibc_defaults_where_counted
# nbval also rewrites each cell's streams before handing them over, dropping whatever
# precedes a carriage return on a line (and with it tqdm's "cursor up"): nested progress
# bars then read as a log of every redraw. It compares outputs only where a notebook
# stores some (ours store none), so it gets them raw; the website's clean-up
# (docs/executed.py, clean) shows them as a terminal would.
nbval.plugin.coalesce_streams = lambda outputs: outputs

_spec = importlib.util.spec_from_file_location(
    "executed", Path(__file__).parent / "docs/executed.py"
)
executed = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(executed)


# nbval lets a cell tagged `raises-exception` pass whether or not it raises. The lessons'
# broken cells promise an error on their first line (`# raises: IndexError`); this hook
# holds them to it during nbval's own run, so no notebook has to be executed twice.
_ANNOUNCED = re.compile(r"# raises: (\w+)")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    cell = getattr(item, "cell", None)  # only nbval's notebook-cell items have one
    if cell is None:
        return (yield)
    notebook = item.parent
    if item.cell_num == 0:
        notebook.site_start, notebook.site_failed = time.perf_counter(), False
    try:
        result = yield
        _check_announced_error(item, cell)
    except BaseException:
        notebook.site_failed = True
        raise
    finally:
        _keep_outputs(item, cell)
    return result


def _keep_outputs(item, cell) -> None:
    """Put the outputs nbval received into the notebook; after its last code cell, store
    the notebook in the website's smoke cache if every cell passed."""
    notebook = item.parent
    cell.outputs, cell.execution_count = list(item.test_outputs or []), item.cell_num + 1
    for output in cell.outputs:
        if output.get("output_type") == "execute_result":
            output["execution_count"] = cell.execution_count
    last = sum(c.cell_type == "code" for c in notebook.nb.cells) - 1
    if item.cell_num != last or getattr(notebook, "site_failed", True):
        return
    if executed.smoke_environment() and os.environ["CNNLAB_PROGRESS"] == "text":
        seconds = time.perf_counter() - notebook.site_start
        executed.store(Path(str(notebook.fspath)), notebook.nb, "smoke", seconds, [])


def _check_announced_error(item, cell) -> None:
    if "raises-exception" not in cell.get("metadata", {}).get("tags", []):
        return
    announced = _ANNOUNCED.match(cell.source)
    raised = [o["ename"] for o in item.test_outputs or [] if o.get("output_type") == "error"]
    if announced is None:
        pytest.fail("a cell tagged raises-exception must start with '# raises: ExceptionName'")
    if raised != [announced.group(1)]:
        pytest.fail(f"this cell announces {announced.group(1)} but raised {raised or 'nothing'}")

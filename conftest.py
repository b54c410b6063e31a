"""Root pytest configuration: notebooks run as quick, offline smoke runs.

nbval starts each notebook's kernel from this process, so the switches set here reach
the kernels. A value already in the environment wins (``CNNLAB_FAST=0 pytest notebooks``
executes the notebooks in full).
"""

import os
import re

import pytest

os.environ.setdefault("CNNLAB_FAST", "1")
os.environ.setdefault("CNNLAB_OFFLINE", "1")
if os.environ.get("PYTEST_XDIST_WORKER"):
    # pytest-xdist runs one worker per core: one thread each (the notebook kernels they
    # start inherit it), or the workers' thread pools fight over the same cores.
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch

    torch.set_num_threads(1)
# No progress-bar widgets in headless kernels' output; plain text bars are kept.
os.environ.setdefault("TQDM_MININTERVAL", "5")


# nbval lets a cell tagged `raises-exception` pass whether or not it raises. The lessons'
# broken cells promise an error on their first line (`# raises: IndexError`); this hook
# holds them to it during nbval's own run, so no notebook has to be executed twice.
_ANNOUNCED = re.compile(r"# raises: (\w+)")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    result = yield
    cell = getattr(item, "cell", None)  # only nbval's notebook-cell items have one
    if cell is None or "raises-exception" not in cell.get("metadata", {}).get("tags", []):
        return result
    announced = _ANNOUNCED.match(cell.source)
    raised = [o["ename"] for o in item.test_outputs or [] if o.get("output_type") == "error"]
    if announced is None:
        pytest.fail("a cell tagged raises-exception must start with '# raises: ExceptionName'")
    if raised != [announced.group(1)]:
        pytest.fail(f"this cell announces {announced.group(1)} but raised {raised or 'nothing'}")
    return result

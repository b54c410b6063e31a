"""Shared fixtures: tiny stand-in data sets and loaders, a headless matplotlib, a folder
in memory for large model files.

pytest loads this file in its main process too, which under pytest-xdist runs no test:
torch and cnnlab are imported in the fixtures, so that process starts the workers without
first spending seconds on imports it never uses.
"""

from __future__ import annotations

import gc
import shutil
import tempfile
from pathlib import Path

import matplotlib
import pytest

matplotlib.use("Agg")
pytest.register_assert_rewrite("tests.combinations", "tests.launch")


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    import matplotlib.pyplot as plt

    plt.close("all")


@pytest.fixture
def ram_tmp_path(tmp_path):
    """A fresh folder in memory (``/dev/shm``) where the machine has one with room, else
    ``tmp_path``; removed after the test. For model files of hundreds of megabytes (VGG-16
    with its optimizer state writes 2 GB), which a virtual machine's disk takes many
    seconds to write: what the tests check is the files' contents, not the disk."""
    shm = Path("/dev/shm")
    if not shm.is_dir() or shutil.disk_usage(shm).free < 8 * 2**30:
        yield tmp_path
        return
    folder = Path(tempfile.mkdtemp(prefix="cnnlab-test-", dir=shm))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _loader_iterators() -> list:
    from torch.utils.data.dataloader import _MultiProcessingDataLoaderIter

    # type(), not isinstance(): isinstance asks every object its __class__, and torch's
    # deprecated module attributes answer that with a FutureWarning
    return [o for o in gc.get_objects() if type(o) is _MultiProcessingDataLoaderIter]


@pytest.fixture
def release_loader_workers():
    """For a test whose loader dies in an exception (the traceback and its frames form a
    cycle that holds the loader): shut down, at teardown, the workers of the data loaders
    the test started. Left to the garbage collector, each worker costs 5 s: the collector
    runs the weak-reference callbacks, which stop the feeder threads of the workers' queues,
    before the iterator's ``__del__`` sends the workers their stop signal, so the signal
    is never sent and ``join`` waits out its timeout (measured; pytorch/pytorch#81794)."""
    before = {id(it) for it in _loader_iterators()}
    yield
    for it in _loader_iterators():
        if id(it) not in before:
            it._shutdown_workers()


@pytest.fixture
def clean_env(monkeypatch):
    """No cnnlab switches set: each test says which ones it wants."""
    for name in ("CNNLAB_FAST", "CNNLAB_OFFLINE", "CNNLAB_DATA_DIR", "CNNLAB_CIFAR10_DIR"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


@pytest.fixture(scope="session")
def standin_train():
    from cnnlab.data import StandInCIFAR10, cifar10_eval_transform

    return StandInCIFAR10(train=True, size=2000, transform=cifar10_eval_transform())


@pytest.fixture(scope="session")
def standin_test():
    from cnnlab.data import StandInCIFAR10, cifar10_eval_transform

    return StandInCIFAR10(train=False, size=500, transform=cifar10_eval_transform())


@pytest.fixture
def tiny_loaders(standin_train, standin_test):
    from cnnlab.data import make_loader, subset

    train = make_loader(
        subset(standin_train, 256), batch_size=64, shuffle=True, seed=0, num_workers=0
    )
    test = make_loader(subset(standin_test, 128), batch_size=64, num_workers=0)
    return train, test

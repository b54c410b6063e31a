"""Shared fixtures: tiny stand-in data sets and loaders, a headless matplotlib."""

from __future__ import annotations

import matplotlib
import pytest

matplotlib.use("Agg")

from cnnlab.data import StandInCIFAR10, cifar10_eval_transform, make_loader  # noqa: E402


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    import matplotlib.pyplot as plt

    plt.close("all")


@pytest.fixture
def clean_env(monkeypatch):
    """No cnnlab switches set: each test says which ones it wants."""
    for name in ("CNNLAB_FAST", "CNNLAB_OFFLINE", "CNNLAB_DATA_DIR", "CNNLAB_CIFAR10_DIR"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


@pytest.fixture(scope="session")
def standin_train():
    return StandInCIFAR10(train=True, size=2000, transform=cifar10_eval_transform())


@pytest.fixture(scope="session")
def standin_test():
    return StandInCIFAR10(train=False, size=500, transform=cifar10_eval_transform())


@pytest.fixture
def tiny_loaders(standin_train, standin_test):
    from cnnlab.data import subset

    train = make_loader(
        subset(standin_train, 256), batch_size=64, shuffle=True, seed=0, num_workers=0
    )
    test = make_loader(subset(standin_test, 128), batch_size=64, num_workers=0)
    return train, test

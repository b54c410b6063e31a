import io
from contextlib import redirect_stdout
from pathlib import Path

import pytest
import torch

from cnnlab import settings


def test_switches_default_off(clean_env):
    assert settings.fast_mode() is False
    assert settings.offline_mode() is False
    assert settings.data_dir() == Path("data")
    assert settings.cifar10_dir() is None


@pytest.mark.parametrize("value", ["1", "true", "YES", "on"])
def test_switches_on(clean_env, value):
    clean_env.setenv("CNNLAB_FAST", value)
    clean_env.setenv("CNNLAB_OFFLINE", value)
    assert settings.fast_mode() and settings.offline_mode()


def test_unknown_switch_value_says_what_to_do(clean_env):
    clean_env.setenv("CNNLAB_FAST", "maybe")
    with pytest.raises(ValueError, match=r"CNNLAB_FAST='maybe' is not understood: set it to 1"):
        settings.fast_mode()


def test_switches_are_read_at_each_call(clean_env):
    assert settings.choose(full=30, fast=1) == 30
    clean_env.setenv("CNNLAB_FAST", "1")
    assert settings.choose(full=30, fast=1) == 1


def test_data_dirs_from_env(clean_env, tmp_path):
    clean_env.setenv("CNNLAB_DATA_DIR", str(tmp_path))
    clean_env.setenv("CNNLAB_CIFAR10_DIR", str(tmp_path / "c10"))
    assert settings.data_dir() == tmp_path
    assert settings.cifar10_dir() == tmp_path / "c10"


def test_current_settings_print_every_switch(clean_env):
    clean_env.setenv("CNNLAB_OFFLINE", "1")
    text = str(settings.current())
    for name in (
        "CNNLAB_FAST",
        "CNNLAB_OFFLINE",
        "CNNLAB_DATA_DIR",
        "CNNLAB_CIFAR10_DIR",
        "device",
    ):
        assert name in text
    assert "stand-in data" in text


def test_banner_is_boxed():
    out = io.StringIO()
    with redirect_stdout(out):
        settings.banner("hello\nworld!")
    lines = out.getvalue().splitlines()
    assert lines[0] == lines[-1] and set(lines[0]) == {"#"}
    assert len({len(line) for line in lines}) == 1  # a neat box


def test_device_prefers_gpu_then_cpu(monkeypatch):
    assert settings.get_device("cpu") == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert settings.get_device().type == "cuda"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert settings.get_device().type in ("mps", "cpu")


def test_seed_everything_repeats_every_generator():
    import random

    import numpy as np

    def draw():
        return random.random(), float(np.random.rand()), float(torch.rand(1))

    settings.seed_everything(7)
    first = draw()
    settings.seed_everything(7)
    assert draw() == first
    settings.seed_everything(8)
    assert draw() != first


@pytest.mark.parametrize(("rank", "shown"), [(None, True), ("0", True), ("1", False)])
def test_under_torchrun_only_rank_0_prints_a_banner(monkeypatch, rank, shown):
    """Notebook 10: two processes loading the stand-in printed its banner twice each."""
    if rank is None:
        monkeypatch.delenv("RANK", raising=False)
    else:
        monkeypatch.setenv("RANK", rank)
    out = io.StringIO()
    with redirect_stdout(out):
        settings.banner("CNNLAB_OFFLINE=1: stand-in")
    assert ("stand-in" in out.getvalue()) is shown

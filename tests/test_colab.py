"""The Colab path, walked without Colab: each notebook's setup cell runs its Colab branch
with a fake ``google.colab`` module and a real ``pip install`` of this checkout (dry run,
offline); a failed install shows pip's own messages; links resolve on Colab; and the
dependency ranges accept what Colab has already loaded, so installing cnnlab there
upgrades nothing under the running kernel."""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
import types
from functools import cache
from pathlib import Path

import pytest
import torch
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
_spec = importlib.util.spec_from_file_location("sync_home_url", ROOT / ".ci" / "sync_home_url.py")
sync = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(sync)

# What a Colab GPU runtime had installed, from googlecolab/backend-info's pip-freeze.gpu.txt
# (commit a72407924822, 2026-08-19, "Upgrade to Python 3.13"). Update it from there.
COLAB = {
    "torch": "2.11.0", "torchvision": "0.26.0", "numpy": "2.1.3", "pillow": "11.3.0",
    "matplotlib": "3.10.0", "seaborn": "0.13.2", "scikit-learn": "1.6.1", "tqdm": "4.67.3",
    "ipywidgets": "7.7.1", "tensorboard": "2.20.0", "fastapi": "0.141.1",
    "uvicorn": "0.52.3", "python-multipart": "0.0.32", "httpx": "0.28.1",
}  # fmt: skip
COLAB_PYTHON = "3.13"
_REAL_RUN = subprocess.run  # the tests below replace subprocess.run inside the cell


def _cells(path: Path) -> list[dict]:
    return json.loads(path.read_text(encoding="utf-8"))["cells"]


def _setup_source(path: Path) -> str:
    cells = _cells(path)
    return "".join(cells[sync.setup_cell_index(cells)]["source"])


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_every_setup_cell_is_the_one_written_in_sync_home_url(path):
    assert _setup_source(path) == sync.setup_cell(sync.home()), (
        "run `python .ci/sync_home_url.py` to rewrite the setup cells"
    )


@cache
def _dry_run_install(requirement: str) -> subprocess.CompletedProcess:
    """pip, for real, on this checkout instead of GitHub: offline, dependencies already here."""
    assert requirement == f"cnnlab @ git+https://github.com/{sync.home()}", requirement
    local = f"cnnlab @ {ROOT.as_uri()}"
    return _REAL_RUN([sys.executable, "-m", "pip", "install", "-q", "--dry-run", "--no-deps",
                           "--no-build-isolation", "--no-index", local],
                          capture_output=True, text=True, check=False)  # fmt: skip


def _run_on_fake_colab(source: str, monkeypatch, pip) -> list:
    monkeypatch.setitem(sys.modules, "google", types.ModuleType("google"))
    monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    calls = []

    def run(args, **kwargs):
        calls.append(args)
        assert args[:4] == [sys.executable, "-m", "pip", "install"], args
        return pip(args[-1])

    monkeypatch.setattr(subprocess, "run", run)
    exec(compile(source, "<setup cell>", "exec"), {"__name__": "__main__"})
    return calls


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_the_colab_branch_of_each_setup_cell_installs_cnnlab(path, monkeypatch, capsys):
    calls = _run_on_fake_colab(_setup_source(path), monkeypatch, _dry_run_install)
    assert len(calls) == 1
    assert _dry_run_install(calls[0][-1]).returncode == 0, _dry_run_install(calls[0][-1]).stderr
    assert "GPU:" in capsys.readouterr().out


def test_a_failed_install_shows_pips_messages_and_stops(monkeypatch, capsys):
    def failing(requirement):
        return subprocess.CompletedProcess([], 1, stdout="",
                                           stderr="ERROR: Could not find a version that satisfies "
                                                  "the requirement torch>=99")  # fmt: skip

    source = _setup_source(NOTEBOOKS[0])
    with pytest.raises(RuntimeError, match="pip's messages are above"):
        _run_on_fake_colab(source, monkeypatch, failing)
    assert (
        "Could not find a version that satisfies the requirement torch>=99"
        in capsys.readouterr().out
    )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_links_resolve_on_colab(path):
    """Colab opens a notebook alone: a relative link to the glossary or to another notebook
    goes nowhere there. Each relative link (which JupyterLab opens, offline too) has a twin:
    the glossary on GitHub, a notebook on Colab."""
    for cell in _cells(path):
        if cell["cell_type"] != "markdown":
            continue
        text = "".join(cell["source"])
        for match in re.finditer(r"\]\(([^)\s]+)\)", text):
            target = match.group(1)
            if target.startswith(("http://", "https://", "#")):
                continue
            if target == "GLOSSARY.md":
                twin = sync.glossary_url(sync.home())
                assert text[match.end() :].startswith(f" ([on GitHub]({twin}))"), target
                continue
            assert re.fullmatch(r"\d\d_[a-z0-9_]+\.ipynb", target), f"relative link {target}"
            twin = sync.colab_url(sync.home(), target)
            assert text[match.end() :].startswith(f" ([on Colab]({twin}))"), target


def test_dependency_ranges_accept_what_colab_has_loaded():
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    for line in project["dependencies"]:
        requirement = Requirement(line)
        name = requirement.name.lower()
        if name in COLAB:
            assert requirement.specifier.contains(COLAB[name], prereleases=True), (
                f"{line} would upgrade Colab's {name} {COLAB[name]} under the running kernel"
            )
    assert Requirement(f"python{project['requires-python']}").specifier.contains(COLAB_PYTHON)


def test_notebook_06_keeps_checkpoints_on_drive_and_resumes_in_a_new_runtime(
    tmp_path, monkeypatch, capsys
):
    """Notebook 06's Drive cell, run twice on a fake Colab: the first runtime mounts Drive
    and trains with its checkpoint there; the second (a wiped local disk, a new namespace)
    mounts again, finds the checkpoint and trains nothing more."""
    from torch.utils.data import TensorDataset

    from cnnlab.callbacks import LambdaCallback, ModelCheckpoint
    from cnnlab.data import make_loader
    from cnnlab.engine import fit
    from cnnlab.models import SimpleCNN

    source = next("".join(c["source"]) for c in _cells(NOTEBOOKS[6]) if "drive.mount" in "".join(c["source"]))  # fmt: skip
    drive_root = tmp_path / "drive"  # stands for /content/drive, which the fake mounts
    source = source.replace("/content/drive", str(drive_root))
    mounted, epochs_trained = [], []
    colab = types.ModuleType("google.colab")
    colab.drive = types.SimpleNamespace(mount=lambda where: (mounted.append(where),
                                                             Path(where, "MyDrive").mkdir(parents=True, exist_ok=True)))  # fmt: skip
    monkeypatch.setitem(sys.modules, "google", types.ModuleType("google"))
    monkeypatch.setitem(sys.modules, "google.colab", colab)
    data = TensorDataset(torch.rand(32, 3, 32, 32), torch.randint(0, 10, (32,)))

    def train_run(checkpoint=None, resume=False):  # notebook 06's, smaller
        torch.manual_seed(0)
        counter = LambdaCallback(on_epoch_end=lambda state: epochs_trained.append(state.epoch))
        return fit(SimpleCNN(), make_loader(data, 16, num_workers=0), epochs=2, device="cpu",
                   progress=False, callbacks=[ModelCheckpoint(checkpoint, resume=resume), counter])  # fmt: skip

    histories = []
    for runtime in ("first", "second"):
        local = tmp_path / runtime  # each runtime's own local disk
        local.mkdir()
        namespace = {"sys": sys, "Path": Path, "work": local, "train_run": train_run}
        exec(compile(source, "<notebook 06, Drive cell>", "exec"), namespace)
        histories.append(namespace["history"])
    assert mounted == [str(drive_root)] * 2
    assert (drive_root / "MyDrive" / "cnnlab-runs" / "06_simplecnn.pt").exists()
    assert not [p for r in ("first", "second") for p in (tmp_path / r).iterdir()]  # nothing local
    assert epochs_trained == [1, 2]  # the second runtime trained nothing
    assert histories[1].train_loss == histories[0].train_loss
    assert "already trained 2 of 2 epochs, nothing to resume" in capsys.readouterr().out

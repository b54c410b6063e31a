"""The `cnnlab` command, end to end on the stand-in data (smoke + offline switches)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from cnnlab.cli import build_parser, main


@pytest.fixture
def switches(clean_env):
    clean_env.setenv("CNNLAB_FAST", "1")
    clean_env.setenv("CNNLAB_OFFLINE", "1")
    return clean_env


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One smoke-sized `cnnlab train` run, shared by the tests that only read its output."""
    folder = tmp_path_factory.mktemp("cli")
    with pytest.MonkeyPatch.context() as env:
        env.setenv("CNNLAB_FAST", "1")
        env.setenv("CNNLAB_OFFLINE", "1")
        assert main(["train", "--epochs", "1", "--batch-size", "64",
                     "--out", str(folder / "m.pt")]) == 0  # fmt: skip
    return folder / "m.pt"


def test_train_evaluate_predict_export(switches, trained, capsys):
    model, tmp_path = trained, trained.parent
    assert model.exists() and (tmp_path / "m-training.pt").exists()
    assert main(["evaluate", str(model)]) == 0
    assert "test accuracy" in capsys.readouterr().out

    Image.new("RGB", (40, 40), (200, 10, 10)).save(tmp_path / "red.png")
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8 truncated")
    assert main(["predict", str(model), str(tmp_path / "red.png"), "-k", "2"]) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith(f"{tmp_path / 'red.png'}: ") and line.count("%") == 2
    assert main(["predict", str(model), str(tmp_path / "broken.jpg")]) == 1
    assert "broken.jpg" in capsys.readouterr().err

    assert main(["export", str(model), "--format", "onnx", "--quantize", "dynamic"]) == 0
    out = capsys.readouterr().out
    assert (tmp_path / "m.onnx").exists() and "max |difference|" in out
    assert (tmp_path / "m.dynamic-int8.onnx").exists() and "dynamic int8" in out
    assert "accuracy" in out and "smaller" in out
    with pytest.raises(SystemExit, match="--format onnx"):
        main(["export", str(model), "--format", "torchscript", "--quantize", "static"])


def test_train_resumes_from_its_checkpoint(switches, tmp_path, capsys):
    out = tmp_path / "m.pt"
    main(["train", "--epochs", "1", "--batch-size", "64", "--out", str(out)])
    capsys.readouterr()
    main(["train", "--epochs", "2", "--batch-size", "64", "--out", str(out), "--resume"])
    assert "resumed from" in capsys.readouterr().out  # not a fresh two-epoch run
    from cnnlab.checkpoints import safe_load

    state = safe_load(tmp_path / "m-training.pt")
    assert state["epoch"] == 2 and state["history"]["epoch"] == [1, 2]


def test_serve_binds_to_loopback_by_default(monkeypatch, trained, switches):
    import uvicorn

    calls = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, host, port: calls.update(host=host, port=port))
    assert main(["serve", str(trained)]) == 0
    assert calls == {"host": "127.0.0.1", "port": 8000}


@pytest.mark.parametrize("command", ["train", "evaluate", "predict", "export", "serve"])
def test_every_command_explains_itself(command, capsys):
    with pytest.raises(SystemExit) as info:
        build_parser().parse_args([command, "--help"])
    assert info.value.code == 0
    assert len(capsys.readouterr().out.splitlines()) > 3


def test_the_console_script_is_installed():
    script = Path(sys.executable).with_name("cnnlab")
    assert script.exists(), "reinstall with pip install -e . to get the `cnnlab` command"
    out = subprocess.run([str(script), "--help"], capture_output=True, text=True, check=True)
    assert "train" in out.stdout and "serve" in out.stdout

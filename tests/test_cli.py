"""The `cnnlab` command, end to end on the stand-in data (smoke + offline switches): every
subcommand, resuming, and cnnlab's errors as one line with the fix and exit status 2."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image

from cnnlab.cli import build_parser, main
from cnnlab.models import SimpleCNN


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


def _error_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert err.startswith("cnnlab: error: ") and "Traceback" not in err
    return err


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
    import onnx

    props = {p.key for p in onnx.load(str(tmp_path / "m.onnx")).metadata_props}
    assert {"cnnlab.class_names", "cnnlab.preprocessing"} <= props
    assert main(["export", str(model), "--format", "torchscript", "--quantize", "static"]) == 2
    assert "--format onnx" in _error_line(capsys)


def test_predict_classifies_every_good_file_and_reports_each_bad_one(switches, trained, capsys):
    folder = trained.parent
    Image.new("RGB", (50, 30), (0, 90, 200)).save(folder / "good.png")
    Image.new("L", (9000, 9000)).save(folder / "bomb.png")  # 81 megapixels, a small file
    (folder / "notes.txt").write_text("hello")
    code = main(["predict", str(trained), str(folder / "bomb.png"), str(folder / "good.png"),
                 str(folder / "notes.txt"), str(folder / "missing.jpg")])  # fmt: skip
    out, err = capsys.readouterr()
    assert code == 1
    assert out.startswith(f"{folder / 'good.png'}: ") and out.count("\n") == 1
    assert "bomb.png is 9000 x 9000 = 81.0 megapixels" in err and "--max-pixels" in err
    assert "notes.txt is not an image" in err and "text file" in err
    assert "no file at" in err and "missing.jpg" in err
    assert "3 of 4 image(s) could not be read" in err


def test_train_resumes_from_its_checkpoint(switches, tmp_path, capsys):
    out = tmp_path / "m.pt"
    main(["train", "--epochs", "1", "--batch-size", "64", "--out", str(out)])
    capsys.readouterr()
    main(["train", "--epochs", "2", "--batch-size", "64", "--out", str(out), "--resume"])
    assert "resumed from" in capsys.readouterr().out  # not a fresh two-epoch run
    from cnnlab.checkpoints import safe_load

    state = safe_load(tmp_path / "m-training.pt")
    assert state["epoch"] == 2 and state["history"]["epoch"] == [1, 2]


def test_a_trained_model_is_never_overwritten_unasked(switches, trained, capsys):
    before = trained.read_bytes(), (trained.parent / "m-training.pt").read_bytes()
    assert main(["train", "--epochs", "1", "--out", str(trained)]) == 2
    err = _error_line(capsys)
    assert "--resume" in err and "--overwrite" in err and str(trained) in err
    assert (trained.read_bytes(), (trained.parent / "m-training.pt").read_bytes()) == before


def _image_folder(root: Path, classes=("cat", "dog"), per_class=2) -> Path:
    for i, name in enumerate(classes):
        (root / name).mkdir(parents=True, exist_ok=True)
        for j in range(per_class):
            Image.new("RGB", (48, 40), (40 * i, 90, 20 * j)).save(root / name / f"{j}.png")
    return root


def test_errors_are_one_line_with_the_fix(switches, trained, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    (tmp_path / "noimages" / "cat").mkdir(parents=True)
    _image_folder(tmp_path / "onlytrain" / "train")
    torch.save(SimpleCNN(), tmp_path / "whole.pt")  # the seed tutorial's pickled model
    (tmp_path / "cut.pt").write_bytes(trained.read_bytes()[:5000])
    (tmp_path / "page.pt").write_text("<!DOCTYPE html><html><body>Sign in</body></html>")
    torch.save(SimpleCNN().state_dict(), tmp_path / "weights.pt")
    cases = [
        (["train", "--folder", str(tmp_path / "empty"), "--out", str(tmp_path / "a.pt")],
         "no train/ folder"),
        (["evaluate", str(trained), "--folder", str(tmp_path / "noimages")], "hold no images"),
        (["train", "--folder", str(tmp_path / "onlytrain"), "--out", str(tmp_path / "b.pt")],
         "has no test/ folder beside its train/"),
        (["predict", str(tmp_path / "whole.pt"), "x.png"], "re-save model.state_dict()"),
        (["predict", str(tmp_path / "cut.pt"), "x.png"], "truncated or damaged"),
        (["predict", str(tmp_path / "page.pt"), "x.png"], "is an HTML page"),
        (["predict", str(tmp_path / "weights.pt"), "x.png"], "holds only weights"),
        (["predict", str(trained.parent / "m-training.pt"), "x.png"], "is a training checkpoint"),
        (["evaluate", str(tmp_path / "nothing.pt")], "is no file"),
        (["train", "--arch", "SmallResNet", "--epochs", "2", "--out", str(trained), "--resume"],
         "do not fit this SmallResNet"),
    ]  # fmt: skip
    for argv, message in cases:
        assert main(argv) == 2, argv
        assert message in _error_line(capsys), argv


def test_debug_shows_the_traceback(switches, tmp_path, capsys):
    assert main(["--debug", "evaluate", str(tmp_path / "nothing.pt")]) == 2
    assert "Traceback" in capsys.readouterr().err


def test_evaluate_needs_only_the_test_split_and_checks_the_classes(switches, tmp_path, capsys):
    photos = tmp_path / "photos"
    _image_folder(photos / "train", per_class=3)
    _image_folder(photos / "test", per_class=2)
    model = tmp_path / "photos.pt"
    assert main(["train", "--folder", str(photos), "--epochs", "1", "--batch-size", "4",
                 "--size", "32", "--out", str(model)]) == 0  # fmt: skip
    capsys.readouterr()
    only_test = _image_folder(tmp_path / "only" / "test")  # no train/ beside it
    assert main(["evaluate", str(model), "--folder", str(only_test.parent)]) == 0
    assert "on 4 images" in capsys.readouterr().out
    flat = _image_folder(tmp_path / "flat")  # class folders directly
    assert main(["evaluate", str(model), "--folder", str(flat)]) == 0
    capsys.readouterr()
    other = _image_folder(tmp_path / "zoo", classes=("cat", "fox"))
    for command in (["evaluate", str(model), "--folder", str(other)],
                    ["export", str(model), "--folder", str(other)]):  # fmt: skip
        assert main(command) == 2
        err = _error_line(capsys)
        assert "['cat', 'fox']" in err and "['cat', 'dog']" in err


def test_serve_binds_to_loopback_by_default(monkeypatch, trained, switches):
    import uvicorn

    calls = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, host, port: calls.update(host=host, port=port))
    assert main(["serve", str(trained)]) == 0
    assert calls == {"host": "127.0.0.1", "port": 8000}


@pytest.mark.parametrize("command", ["train", "evaluate", "predict", "export", "serve", "classify"])
def test_every_command_explains_itself(command, capsys):
    with pytest.raises(SystemExit) as info:
        build_parser().parse_args([command, "--help"])
    assert info.value.code == 0
    assert len(capsys.readouterr().out.splitlines()) > 3


def test_the_console_script_is_installed():
    script = Path(sys.executable).with_name("cnnlab")
    assert script.exists(), "reinstall with pip install -e . to get the `cnnlab` command"
    out = subprocess.run([str(script), "--help"], capture_output=True, text=True, check=True)
    assert "train" in out.stdout and "serve" in out.stdout and "classify" in out.stdout


def test_a_corrupt_photo_met_by_a_loader_worker_is_one_line(switches, tmp_path, capsys,
                                                            monkeypatch, release_loader_workers):  # fmt: skip
    """The worker's own traceback is not flattened into the line: cnnlab's message is."""
    import cnnlab.data.loaders as loaders

    monkeypatch.setattr(loaders, "default_num_workers", lambda: 1)
    photos = tmp_path / "photos"
    _image_folder(photos / "train", per_class=3)
    _image_folder(photos / "test", per_class=2)
    (photos / "train" / "cat" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 cut short")
    assert main(["train", "--folder", str(photos), "--epochs", "1", "--batch-size", "2",
                 "--size", "32", "--out", str(tmp_path / "m.pt")]) == 2  # fmt: skip
    err = capsys.readouterr().err  # (training's progress bars are on stderr too)
    lines = [line for line in err.splitlines() if "cnnlab: error:" in line]
    assert len(lines) == 1 and lines[0].startswith("cnnlab: error: "), err
    line = lines[0]
    assert "broken.jpg" in line and "--skip-corrupt" in line
    assert "worker" not in line and "Original Traceback" not in line and 'File "' not in line

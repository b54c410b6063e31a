"""`cnnlab train --arch X` then `cnnlab predict` for every X that `cnnlab train --help`
offers: one model registry (cnnlab.registry) behind the CLI's choices, make_recipe and
loading a model file, so no architecture is offered that cannot be trained and loaded.
Smoke-sized: one epoch on a few generated images, torchvision models with random weights
(the offline switch), at 32 px where the network takes it (64 for AlexNet, whose stride-4
stem and three pools need 63, and 80 for Inception v3, which needs 75). The model files go
to a folder in memory where the machine has one (`ram_tmp_path`)."""

from __future__ import annotations

import pytest
from PIL import Image

from cnnlab.cli import build_parser, main
from cnnlab.registry import model_names


def _offered() -> list[str]:
    train = build_parser()._subparsers._group_actions[0].choices["train"]
    return list(next(a for a in train._actions if a.dest == "arch").choices)


def test_the_cli_offers_exactly_the_registry():
    assert _offered() == list(model_names())


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    root = tmp_path_factory.mktemp("photos")
    for split in ("train", "test"):
        for name, colour in (("red", (200, 30, 30)), ("blue", (30, 30, 200))):
            (root / split / name).mkdir(parents=True)
            for i in range(2):
                Image.new("RGB", (60 + 10 * i, 50), colour).save(root / split / name / f"{i}.png")
    return root


@pytest.mark.parametrize("arch", _offered())
def test_train_then_predict(arch, photos, ram_tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("CNNLAB_FAST", "1")
    monkeypatch.setenv("CNNLAB_OFFLINE", "1")
    size = {"alexnet": "64", "inception_v3": "80"}.get(arch, "32")
    out = ram_tmp_path / "m.pt"  # VGG-16's files are 2 GB: in memory where there is room
    assert main(["train", "--folder", str(photos), "--arch", arch, "--epochs", "1",
                 "--batch-size", "4", "--size", size, "--out", str(out)]) == 0  # fmt: skip
    capsys.readouterr()
    assert main(["predict", str(out), str(photos / "test" / "red" / "0.png"), "-k", "2"]) == 0
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert line.endswith("%") and line.count("%") == 2, line

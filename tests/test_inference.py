"""Predictions: every kind of input, odd image modes converted, bad data named, and the
preprocessing stored with the weights used on the way back."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

from cnnlab import seed_everything
from cnnlab.data import CIFAR10_CLASSES
from cnnlab.errors import CorruptImageError
from cnnlab.images import decode_image as open_image
from cnnlab.inference import Predictor, Preprocessing, build_model, to_rgb
from cnnlab.models import SimpleCNN


@pytest.fixture
def predictor():
    seed_everything(0)
    return Predictor(SimpleCNN(), CIFAR10_CLASSES, Preprocessing(32))


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def test_every_input_kind_gives_the_same_answer(predictor, tmp_path):
    picture = Image.fromarray(np.random.default_rng(0).integers(0, 255, (40, 48, 3), np.uint8))
    picture.save(tmp_path / "p.png")
    answers = [predictor.predict(s, k=3) for s in (picture, tmp_path / "p.png",
                                                    str(tmp_path / "p.png"), _png(picture))]  # fmt: skip
    assert all(a == answers[0] for a in answers)
    names, probs = zip(*answers[0], strict=True)
    assert set(names) <= set(CIFAR10_CLASSES) and list(probs) == sorted(probs, reverse=True)
    batch = torch.stack([predictor.prepare(picture)] * 2)
    assert predictor.predict_batch(batch, k=3) == [answers[0]] * 2


@pytest.mark.parametrize(
    ("mode", "value", "rgb"),
    [("L", 128, (128, 128, 128)), ("I;16", 65535, (255, 255, 255)), ("I;16", 0, (0, 0, 0)),
     ("RGBA", (255, 0, 0, 0), (255, 255, 255)), ("RGBA", (255, 0, 0, 255), (255, 0, 0)),
     ("LA", (0, 255), (0, 0, 0)), ("CMYK", (0, 0, 0, 0), (255, 255, 255))],
)  # fmt: skip
def test_odd_modes_become_8_bit_rgb(mode, value, rgb):
    converted = to_rgb(Image.new(mode, (4, 4), value))
    assert converted.mode == "RGB" and converted.getpixel((1, 1)) == rgb


def test_sixteen_bit_grayscale_is_scaled_not_clipped(predictor):
    ramp = (np.arange(16, dtype=np.uint16).reshape(4, 4) * 4096).astype(np.uint16)
    image = to_rgb(Image.fromarray(ramp))
    assert image.getpixel((0, 0))[0] == 0 and image.getpixel((3, 3))[0] == round(
        61440 / 65535 * 255
    )
    assert len(predictor.predict(Image.fromarray(ramp))) == 5


def test_not_an_image_and_truncated_images_are_named(tmp_path):
    with pytest.raises(CorruptImageError, match="not an image"):
        open_image(b"%PDF-1.7 definitely not a picture")
    data = _png(Image.new("RGB", (64, 64), (10, 200, 30)))
    with pytest.raises(CorruptImageError, match="truncated or damaged"):
        open_image(data[: len(data) // 2])
    (tmp_path / "x.jpg").write_bytes(b"")
    with pytest.raises(CorruptImageError, match="x.jpg"):
        open_image(tmp_path / "x.jpg")


def test_saved_predictor_reloads_with_its_preprocessing(predictor, tmp_path):
    custom = Predictor(predictor.model, predictor.class_names,
                       Preprocessing(32, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25)))  # fmt: skip
    path = custom.save(tmp_path / "model.pt", {"name": "SimpleCNN", "kwargs": {}})
    loaded = Predictor.load(path)
    assert loaded.preprocessing == custom.preprocessing and loaded.class_names == list(
        CIFAR10_CLASSES
    )
    picture = Image.new("RGB", (32, 32), (90, 30, 200))
    assert loaded.predict(picture) == custom.predict(picture)
    assert loaded.predict(picture) != predictor.predict(picture)  # the stored statistics count


def test_build_model_knows_cnnlab_and_torchvision_models():
    assert build_model({"name": "SimpleCNN", "kwargs": {"num_classes": 4}}).num_classes == 4
    with torch.device("meta"):
        net = build_model({"name": "resnet18", "kwargs": {"num_classes": 3}})
    assert net.fc.out_features == 3

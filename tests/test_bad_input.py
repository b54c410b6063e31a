"""Bad input, at every entry point it touches: never silent, never a raw traceback from a
library, and the message names the file (or input) and the fix.

Entry points: the image-folder loader (training), the decode cache, Predictor (files,
bytes), the web API, checkpoint loading, fit and evaluate. The CLI's side is in
test_cli.py, a real server under a burst of pixel bombs in test_serve_process.py.
"""

from __future__ import annotations

import io
import os
import warnings

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader, TensorDataset

from cnnlab.checkpoints import CheckpointError, load_weights, safe_load
from cnnlab.data import (
    DecodedImages,
    cifar10_train_transform,
    decode_images,
    load_image_folder,
    save_sideways,
)
from cnnlab.data.tensor_loader import cache_folder
from cnnlab.engine import evaluate, fit
from cnnlab.errors import (
    CorruptImageError,
    ImageTransformError,
    InputShapeError,
    LabelError,
    NonFiniteInputError,
)
from cnnlab.images import ImageNotFoundError, ImageTooLargeError, decode_image
from cnnlab.inference import Predictor
from cnnlab.models import SimpleCNN
from cnnlab.preprocessing import Preprocessing

RNG = np.random.default_rng(0)


def _save(image: Image.Image, path, **options):
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, **options)
    return path


def _sideways(image, path):
    path.parent.mkdir(parents=True, exist_ok=True)
    save_sideways(image, path)
    return path


def _modes():
    """One file per PIL mode a learner's folder can hold: (name, writer)."""
    rgb = RNG.integers(0, 256, (24, 32, 3), dtype=np.uint8)
    gray = rgb[..., 0]
    rgba = np.dstack([rgb, RNG.integers(0, 256, (24, 32), dtype=np.uint8)])
    palette = Image.fromarray(rgb).convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    palette.info["transparency"] = 3
    frames = [Image.fromarray(rgb), Image.fromarray(255 - rgb)]
    return {
        "L": lambda p: _save(Image.fromarray(gray), p.with_suffix(".png")),
        "LA": lambda p: _save(Image.fromarray(np.dstack([gray, gray]), "LA"), p.with_suffix(".png")),
        "P-transparency": lambda p: _save(palette, p.with_suffix(".png"), transparency=3),
        "RGBA": lambda p: _save(Image.fromarray(rgba, "RGBA"), p.with_suffix(".png")),
        "I": lambda p: _save(Image.fromarray(gray.astype(np.int32) * 200, "I"), p.with_suffix(".tif")),
        "I;16": lambda p: _save(Image.fromarray(gray.astype(np.uint16) * 257), p.with_suffix(".png")),
        "F": lambda p: _save(Image.fromarray(gray.astype(np.float32) / 255, "F"), p.with_suffix(".tif")),
        "CMYK": lambda p: _save(Image.fromarray(rgb).convert("CMYK"), p.with_suffix(".jpg")),
        "1": lambda p: _save(Image.fromarray(gray > 128), p.with_suffix(".png")),
        "EXIF-sideways": lambda p: _sideways(Image.fromarray(rgb), p.with_suffix(".jpg")),
        "animated-GIF": lambda p: _save(frames[0], p.with_suffix(".gif"), save_all=True,
                                        append_images=frames[1:], duration=100, loop=0),
    }  # fmt: skip


MODES = _modes()


@pytest.mark.parametrize("mode", list(MODES))
def test_training_and_serving_decode_every_mode_identically(mode, tmp_path):
    path = MODES[mode](tmp_path / "data" / "x" / "img")
    pre = Preprocessing(24, mean=(0.5,) * 3, std=(0.25,) * 3)
    folder = load_image_folder(tmp_path / "data", transform=pre.transform())
    assert [p for p, _ in folder.samples] == [str(path)]  # an animated GIF is not left out
    trained_on = folder[0][0]
    predictor = Predictor(SimpleCNN(input_size=24), ["x"], pre)
    served_file, served_upload = predictor.prepare(path), predictor.prepare(path.read_bytes())
    assert torch.equal(trained_on, served_file) and torch.equal(trained_on, served_upload)
    cached = decode_images(load_image_folder(tmp_path / "data"), cache=False).images[0]
    assert torch.equal(cached, torch.from_numpy(np.asarray(decode_image(path))).permute(2, 0, 1))


def test_exif_orientation_is_applied_everywhere(tmp_path):
    upright = Image.new("RGB", (30, 40), (255, 255, 255))
    upright.paste((200, 0, 0), (0, 0, 30, 10))  # a red band at the top
    save_sideways(upright, tmp_path / "phone.jpg")
    assert Image.open(tmp_path / "phone.jpg").size == (40, 30)  # stored on its side
    decoded = decode_image(tmp_path / "phone.jpg")
    assert decoded.size == (30, 40) and decoded.getpixel((15, 3))[0] > 150


def test_sixteen_bit_and_transparency_are_the_same_in_training_and_serving(tmp_path):
    ramp = (np.arange(64, dtype=np.uint16).reshape(8, 8) * 1000).astype(np.uint16)
    _save(Image.fromarray(ramp), tmp_path / "d" / "a" / "ramp.png")
    decoded = np.asarray(load_image_folder(tmp_path / "d")[0][0])
    assert decoded[0, 0, 0] == 0 and decoded[7, 7, 0] == round(63000 / 65535 * 255)  # scaled
    clear = Image.new("RGBA", (8, 8), (255, 0, 0, 0))
    assert decode_image(clear).getpixel((0, 0)) == (255, 255, 255)  # composited on white


def _bomb(path, side=9000):
    """A PNG of a few hundred kB that declares `side` x `side` pixels."""
    return _save(Image.new("L", (side, side)), path)


def test_pixel_bombs_are_refused_before_decoding_without_touching_pils_limit(tmp_path):
    limit = Image.MAX_IMAGE_PIXELS
    bomb = _bomb(tmp_path / "d" / "a" / "bomb.png")
    assert bomb.stat().st_size < 500_000
    with pytest.raises(
        ImageTooLargeError, match=r"bomb\.png is 9000 x 9000 = 81.0 megapixels.*--max-pixels"
    ):
        decode_image(bomb)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # not even PIL's DecompressionBombWarning escapes
        with pytest.raises(ImageTooLargeError):
            decode_image(bomb.read_bytes())
    assert decode_image(bomb, max_pixels=None).size == (9000, 9000)  # on request only
    _save(Image.new("RGB", (10, 10)), tmp_path / "d" / "a" / "fine.png")
    folder = load_image_folder(tmp_path / "d", skip_corrupt=True)
    assert folder.skipped == [str(bomb)] and len(folder) == 1  # skip_corrupt skips it
    predictor = Predictor(SimpleCNN(), ["a"] * 10, Preprocessing(32))
    with pytest.raises(ImageTooLargeError):
        predictor.predict(bomb)
    assert Image.MAX_IMAGE_PIXELS == limit


def test_a_missing_path_is_not_called_damaged(tmp_path):
    with pytest.raises(ImageNotFoundError, match=r"no file at .*nope\.jpg: check the path"):
        decode_image(tmp_path / "nope.jpg")
    (tmp_path / "empty.jpg").write_bytes(b"")
    with pytest.raises(CorruptImageError, match=r"empty\.jpg is empty \(0 bytes\)"):
        decode_image(tmp_path / "empty.jpg")


def test_an_image_smaller_than_the_crop_names_the_file_and_the_fix(tmp_path):
    _save(Image.new("RGB", (20, 16)), tmp_path / "d" / "a" / "tiny.png")
    folder = load_image_folder(tmp_path / "d", transform=cifar10_train_transform(crop_padding=0))
    with pytest.raises(ImageTransformError, match=r"tiny\.png \(20x16 px\).*photo_train_transform"):
        folder[0]


def test_nan_inputs_are_caught_where_they_enter(tmp_path):
    x = torch.randn(8, 3, 32, 32)
    x[3, 0, 5, 5] = float("nan")
    loader = DataLoader(TensorDataset(x, torch.arange(8) % 10), batch_size=4)
    for run in (lambda: fit(SimpleCNN(), loader, epochs=1, device="cpu", progress=False),
                lambda: evaluate(SimpleCNN(), loader)):  # fmt: skip
        with pytest.raises(NonFiniteInputError, match=r"batch 0 holds 1 NaN or infinite value"):
            run()
    predictor = Predictor(SimpleCNN(), [str(i) for i in range(10)], Preprocessing(32))
    with pytest.raises(NonFiniteInputError, match="the batch to predict"):
        predictor.predict_batch(x)


def test_float64_is_converted_and_integers_are_refused_with_the_fix():
    x = torch.rand(8, 3, 32, 32, dtype=torch.float64)
    loader = DataLoader(TensorDataset(x, torch.arange(8) % 10), batch_size=4)
    history = fit(SimpleCNN(), loader, epochs=1, device="cpu", progress=False)
    assert np.isfinite(history.train_loss[0])
    ints = DataLoader(TensorDataset((x * 255).to(torch.uint8), torch.arange(8) % 10), batch_size=4)
    with pytest.raises(InputShapeError, match=r"dtype torch.uint8.*ToTensor\(\)"):
        evaluate(SimpleCNN(), ints)


def test_a_model_evaluated_on_data_with_more_classes_is_told_so():
    loader = DataLoader(
        TensorDataset(torch.randn(4, 3, 32, 32), torch.tensor([0, 1, 7, 9])), batch_size=4
    )
    with pytest.raises(
        LabelError, match=r"found 9.*or the data is not the data set the model was made for"
    ):
        evaluate(SimpleCNN(num_classes=5), loader)


@pytest.mark.parametrize(
    ("content", "message"),
    [(b"", "is empty"), (b"hello, I am a text file\n", "is a text file"),
     (b"<!DOCTYPE html><html><head><title>404</title></head></html>", "is an HTML page"),
     (bytes(RNG.integers(0, 256, 4096, dtype=np.uint8)), "is not a PyTorch checkpoint"),
     (b"PK\x03\x04" + b"\x00" * 100, "truncated or damaged")],
)  # fmt: skip
def test_files_that_are_not_checkpoints_say_what_they_are(content, message, tmp_path):
    (tmp_path / "model.pt").write_bytes(content)
    for load in (safe_load, lambda p: load_weights(SimpleCNN(), p), Predictor.load):
        with pytest.raises(CheckpointError, match=message):
            load(tmp_path / "model.pt")


def test_a_truncated_checkpoint_and_a_foreign_state_dict_are_named(tmp_path):
    torch.save(SimpleCNN().state_dict(), tmp_path / "good.pt")
    data = (tmp_path / "good.pt").read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=r"cut\.pt is truncated or damaged.*Copy it again"):
        safe_load(tmp_path / "cut.pt")
    import torchvision

    torch.save(torchvision.models.resnet18(num_classes=10).state_dict(), tmp_path / "resnet.pt")
    with pytest.raises(CheckpointError, match=r"do not fit this SimpleCNN.*same architecture"):
        load_weights(SimpleCNN(), tmp_path / "resnet.pt")


def _folder(root, n=3, size=(32, 32)):
    for i in range(n):
        _save(Image.new("RGB", size, (10 * i, 50, 90)), root / "a" / f"{i}.png")
    return load_image_folder(root)


def test_the_decode_cache_checks_its_fingerprint_on_every_load(tmp_path):
    first, second = _folder(tmp_path / "one"), _folder(tmp_path / "two", n=2)
    cache = tmp_path / "shared.pt"
    assert len(decode_images(first, cache=cache)) == 3
    with pytest.warns(UserWarning, match="holds another data set"):
        assert len(decode_images(second, cache=cache)) == 2  # not the first set's images
    assert len(decode_images(second, cache=cache)) == 2  # now cached for the second


def test_the_decode_cache_moves_out_of_a_read_only_data_folder(tmp_path, monkeypatch):
    """The file system's answer is mocked: CI runs as root, who may write anywhere."""
    folder = _folder(tmp_path / "readonly" / "train")
    monkeypatch.setenv("CNNLAB_DATA_DIR", str(tmp_path / "mine"))
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda path, mode: False if "readonly" in str(path)
                        else real_access(path, mode))  # fmt: skip
    assert cache_folder(tmp_path / "readonly" / "train") == tmp_path / "mine" / ".cnnlab-cache"
    decode_images(folder)
    assert list((tmp_path / "mine" / ".cnnlab-cache").glob("train-*.pt"))
    assert not (tmp_path / "readonly" / ".cnnlab-cache").exists()


def test_a_killed_writers_temporary_file_is_removed_and_names_never_collide(tmp_path):
    folder = _folder(tmp_path / "set" / "train")
    cache_dir = cache_folder(tmp_path / "set" / "train")
    cache_dir.mkdir(parents=True)
    dead = 2**22 + 12345  # no such process
    while True:
        try:
            os.kill(dead, 0)
            dead += 1
        except ProcessLookupError:
            break
    decode_images(folder)
    (name,) = [p.name for p in cache_dir.glob("train-*.pt")]
    stale = cache_dir / f".{name}.{dead}.abc.tmp"
    stale.write_bytes(b"half a file")
    mine = cache_dir / f".{name}.{os.getpid()}.xyz.tmp"  # a live writer's: kept
    mine.write_bytes(b"in progress")
    (cache_dir / name).unlink()
    decode_images(folder)
    assert not stale.exists() and mine.exists()
    assert not [p for p in cache_dir.iterdir() if p.name.endswith(".tmp") and p != mine]


def test_an_image_batch_of_mixed_sizes_names_the_transform_to_add():
    from cnnlab.data import collate_images

    with pytest.raises(InputShapeError, match=r"different sizes.*photo_eval_transform"):
        collate_images([(torch.zeros(3, 64, 85), 0), (torch.zeros(3, 64, 64), 1)])


def test_decode_images_keeps_uint8_and_labels(tmp_path):
    data = decode_images(_folder(tmp_path / "x" / "train"), cache=False)
    assert isinstance(data, DecodedImages) and data.images.dtype == torch.uint8


def test_web_upload_errors_name_the_upload(tmp_path):
    from fastapi.testclient import TestClient

    from cnnlab.serve import create_app

    client = TestClient(create_app(Predictor(SimpleCNN(), [str(i) for i in range(10)], Preprocessing(32)),
                                   max_pixels=1_000_000))  # fmt: skip
    buffer = io.BytesIO()
    Image.new("L", (2000, 2000)).save(buffer, format="PNG")
    r = client.post("/predict", files={"file": ("big.png", buffer.getvalue(), "image/png")})
    assert r.status_code == 413 and "'big.png' is 2000 x 2000" in r.json()["detail"]
    r = client.post("/predict", files={"file": ("page.jpg", b"<html>oops</html>", "image/jpeg")})
    assert r.status_code == 415 and "HTML page" in r.json()["detail"]


def test_a_plain_pickle_is_named_as_such_without_torchs_own_warning(tmp_path):
    import pickle

    with open(tmp_path / "weights.pkl", "wb") as f:
        pickle.dump({"w": np.ones(3)}, f)  # pickle.dump, protocol 4: not torch.save
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(CheckpointError, match=r"plain Python pickle.*torch\.save"):
            safe_load(tmp_path / "weights.pkl")
    assert not caught, [str(w.message) for w in caught]
    torch.save({"w": torch.ones(3)}, tmp_path / "legacy.pt", _use_new_zipfile_serialization=False)
    assert torch.equal(safe_load(tmp_path / "legacy.pt")["w"], torch.ones(3))  # still read


def test_messages_carry_no_terminal_colour_codes(tmp_path):
    torch.save(SimpleCNN(), tmp_path / "whole.pt")  # torch's refusal text has bold codes
    with pytest.raises(CheckpointError) as raised:
        safe_load(tmp_path / "whole.pt")
    assert "\x1b" not in str(raised.value) and "pickled Python objects" in str(raised.value)


def test_an_empty_image_offers_the_skip_option_like_a_truncated_one(tmp_path):
    (tmp_path / "empty.jpg").write_bytes(b"")
    with pytest.raises(CorruptImageError, match=r"empty\.jpg is empty.*skip_corrupt=True"):
        decode_image(tmp_path / "empty.jpg")

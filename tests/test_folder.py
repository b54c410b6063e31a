"""Loading a learner's own ImageFolder data, and every way it can be wrong."""

import warnings

import numpy as np
import pytest
from PIL import Image

from cnnlab.data import load_image_folder
from cnnlab.errors import CorruptImageError, DataUnavailableError


def make_folder(root, classes=("cat", "dog"), per_class=3, fmt="png"):
    rng = np.random.default_rng(0)
    for name in classes:
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            pixels = rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / name / f"{i}.{fmt}")
    return root


def test_loads_classes_and_images(tmp_path):
    ds = load_image_folder(make_folder(tmp_path / "pets"))
    assert ds.classes == ["cat", "dog"] and len(ds) == 6
    image, label = ds[0]
    assert image.mode == "RGB" and label == 0


def test_grayscale_and_rgba_images_become_rgb(tmp_path):
    root = make_folder(tmp_path / "d", classes=("a",), per_class=1)
    Image.new("L", (8, 8)).save(root / "a" / "gray.png")
    Image.new("RGBA", (8, 8)).save(root / "a" / "alpha.png")
    ds = load_image_folder(root)
    assert {ds[i][0].mode for i in range(len(ds))} == {"RGB"}


def test_missing_directory(tmp_path):
    with pytest.raises(DataUnavailableError, match=r"does not exist: check the path"):
        load_image_folder(tmp_path / "nope")


def test_a_file_is_not_a_directory(tmp_path):
    (tmp_path / "f.txt").write_text("x")
    with pytest.raises(DataUnavailableError, match=r"is a file, not a directory"):
        load_image_folder(tmp_path / "f.txt")


def test_empty_directory(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(
        DataUnavailableError, match=r"has no class sub-folders: expected one sub-folder per class"
    ):
        load_image_folder(tmp_path / "empty")


def test_class_folder_without_images_is_named(tmp_path):
    root = make_folder(tmp_path / "d")
    (root / "bird").mkdir()
    (root / "bird" / "notes.txt").write_text("no images here")
    with pytest.raises(DataUnavailableError, match=r"class folder\(s\) bird in .* hold no images"):
        load_image_folder(root)


def test_corrupt_image_error_names_the_file_and_the_fix(tmp_path):
    root = make_folder(tmp_path / "d")
    bad = root / "dog" / "broken.jpg"
    bad.write_bytes(b"this is not a jpeg")
    ds = load_image_folder(root)
    index = [p for p, _ in ds.samples].index(str(bad))
    with pytest.raises(
        CorruptImageError,
        match=r"broken\.jpg is not an image PIL can read.*text file. Replace or delete it.*skip_corrupt=True",
    ):
        ds[index]


def test_truncated_image_is_reported(tmp_path):
    root = make_folder(tmp_path / "d", fmt="jpg")
    good = root / "cat" / "0.jpg"
    data = good.read_bytes()
    (root / "cat" / "cut.jpg").write_bytes(data[: len(data) // 2])
    ds = load_image_folder(root)
    index = [p for p, _ in ds.samples].index(str(root / "cat" / "cut.jpg"))
    with pytest.raises(CorruptImageError, match=r"cut\.jpg"):
        ds[index]


def test_skip_corrupt_warns_with_a_count(tmp_path):
    root = make_folder(tmp_path / "d")
    (root / "cat" / "bad1.png").write_bytes(b"junk")
    (root / "dog" / "bad2.jpg").write_bytes(b"junk")
    with pytest.warns(UserWarning, match=r"skipped 2 unreadable image\(s\) of 8"):
        ds = load_image_folder(root, skip_corrupt=True)
    assert len(ds) == 6 and len(ds.targets) == 6 and len(ds.skipped) == 2
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for i in range(len(ds)):
            ds[i]

"""Photo data sets: Flowers-102 in ImageFolder layout, any labelled list of files turned
into that layout, and generated stand-ins of photo-like images for offline readers and
tests.

Real photos differ from CIFAR-10's 32 x 32 squares in three ways that break 32-px code:
they come in every size, landscape and portrait, and phones store many of them sideways
with an EXIF tag that says how to turn them. The generated stand-ins have all three.

Example:
    >>> import tempfile
    >>> root = generate_photo_folder(tempfile.mkdtemp(), kind="layouts", per_class=2)
    >>> sorted(p.name for p in root.iterdir())
    ['bands', 'centre', 'ground', 'sky']
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from .. import settings
from ..errors import DataUnavailableError

# landscape, portrait, 4:3 and square: the shapes photos come in
PHOTO_SIZES = ((640, 480), (480, 640), (1024, 768), (300, 300), (800, 600))
LAYOUT_CLASSES = ("bands", "centre", "ground", "sky")
FLOWER_CLASSES = ("three-petal", "four-petal", "five-petal", "six-petal", "eight-petal")
_PETALS = {"three-petal": 3, "four-petal": 4, "five-petal": 5, "six-petal": 6, "eight-petal": 8}
EXIF_ORIENTATION = 0x0112


def _colour(rng: np.random.Generator, bright: bool) -> np.ndarray:
    base = rng.uniform(170, 250, 3) if bright else rng.uniform(10, 90, 3)
    return base[None, None, :]


def _layout(name: str, w: int, h: int, rng: np.random.Generator) -> np.ndarray:
    """A picture whose class is its layout: where the bright part is, over the whole frame.
    Each class is left-right symmetric, so a horizontal flip keeps the label."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    if name in ("sky", "ground"):
        horizon = rng.uniform(0.35, 0.6) * h + 0.08 * h * np.sin(xx / w * rng.uniform(2, 6))
        mask = yy < horizon if name == "sky" else yy > horizon
    elif name == "centre":
        radius = rng.uniform(0.22, 0.32) * min(w, h)
        cx, cy = w / 2 + rng.uniform(-0.05, 0.05) * w, h / 2 + rng.uniform(-0.05, 0.05) * h
        mask = (xx - cx) ** 2 + (yy - cy) ** 2 < radius**2
    elif name == "bands":
        period = h / rng.uniform(3, 5)
        mask = np.sin(yy / period * 2 * np.pi + rng.uniform(0, 6.3)) > 0
    else:
        raise ValueError(f"unknown layout class {name!r}")
    return np.where(mask[..., None], _colour(rng, True), _colour(rng, False))


def _flower(name: str, w: int, h: int, rng: np.random.Generator) -> np.ndarray:
    """A flower-like picture: ``k`` petals around a centre on a leafy, noisy background,
    on a stem that grows downwards (so that a turned or flipped photo looks turned). The
    class is the number of petals; colours, size, position and angle are random."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    leaves = np.stack([rng.uniform(20, 70) + 0 * xx, rng.uniform(80, 150) + 0 * xx,
                       rng.uniform(20, 70) + 0 * xx], -1)  # fmt: skip
    leaves += (
        25
        * np.sin(xx / rng.uniform(15, 40))[..., None]
        * np.cos(yy / rng.uniform(15, 40))[..., None]
    )
    size = rng.uniform(0.3, 0.42) * min(w, h)
    cx, cy = w * rng.uniform(0.35, 0.65), h * rng.uniform(0.35, 0.65)
    r = np.hypot(xx - cx, yy - cy) / size
    theta = np.arctan2(yy - cy, xx - cx) + rng.uniform(0, 2 * np.pi)
    lean = rng.uniform(-0.35, 0.35)  # the stem: from the centre to the bottom edge
    stem = (yy > cy) & (np.abs(xx - cx - lean * (yy - cy)) < max(2.0, 0.05 * min(w, h)))
    leaves = np.where(stem[..., None], np.array([150.0, 195.0, 60.0]), leaves)
    petals = _PETALS[name]
    edge = 0.35 + 0.65 * np.abs(np.cos(theta * petals / 2)) ** rng.uniform(0.6, 1.4)
    petal_mask, centre_mask = r < edge, r < 0.22
    petal = rng.uniform(120, 255, 3) * (0.85 + 0.15 * (1 - r))[..., None]
    picture = np.where(petal_mask[..., None], petal, leaves)
    return np.where(centre_mask[..., None], rng.uniform(40, 220, 3)[None, None, :], picture)


def _photo(kind: str, name: str, size: tuple[int, int], rng: np.random.Generator) -> Image.Image:
    w, h = size
    picture = _layout(name, w, h, rng) if kind == "layouts" else _flower(name, w, h, rng)
    picture = picture + rng.normal(0, rng.uniform(4, 14), picture.shape)  # sensor noise
    return Image.fromarray(np.clip(picture, 0, 255).astype(np.uint8), "RGB")


def save_sideways(image: Image.Image, path: str | Path, quality: int = 90) -> None:
    """Save ``image`` as a phone does when held upright: the pixels turned 90 degrees and
    an EXIF orientation tag (6: "rotate 90 clockwise to view") saying how to turn them
    back. A loader that ignores EXIF sees the picture lying on its side.

    Example:
        >>> import tempfile, pathlib
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "upright.jpg"
        >>> save_sideways(Image.new("RGB", (30, 40)), path)
        >>> Image.open(path).size, Image.open(path).getexif()[0x0112]
        ((40, 30), 6)
    """
    exif = Image.Exif()
    exif[EXIF_ORIENTATION] = 6
    image.transpose(Image.Transpose.ROTATE_90).save(path, quality=quality, exif=exif)


def generate_photo_folder(
    root: str | Path,
    kind: str = "layouts",
    per_class: int = 20,
    seed: int = 0,
    sizes: Sequence[tuple[int, int]] = PHOTO_SIZES,
    sideways: float = 0.25,
) -> Path:
    """Write an ImageFolder of generated photo-like JPEGs of mixed sizes and orientations.

    ``kind="layouts"``: four classes defined by the layout of the *whole* picture (a bright
    sky over dark ground, the reverse, a bright centre, horizontal bands): a model that
    sees only a small patch of each photo cannot tell them apart. ``kind="flowers"``: five
    classes of flower-like pictures, told apart by their number of petals (the offline
    stand-in for Flowers-102). A fraction ``sideways`` of the files is stored turned, with
    an EXIF orientation tag, as phones do (:func:`save_sideways`).

    Example:
        >>> import tempfile
        >>> root = generate_photo_folder(tempfile.mkdtemp(), kind="flowers", per_class=1)
        >>> len(list(root.rglob("*.jpg")))
        5
    """
    classes = LAYOUT_CLASSES if kind == "layouts" else FLOWER_CLASSES
    if kind not in ("layouts", "flowers"):
        raise ValueError(f"kind must be 'layouts' or 'flowers', got {kind!r}")
    root = Path(root)
    rng = np.random.default_rng(seed)
    for label, name in enumerate(classes):
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            size = sizes[(i + label) % len(sizes)]
            image = _photo(kind, name, size, rng)
            path = folder / f"{name}-{i:03d}.jpg"
            if rng.random() < sideways:
                save_sideways(image, path)
            else:
                image.save(path, quality=90)
    return root


def folder_from_labels(
    files: Sequence[str | Path],
    labels: Sequence[int],
    class_names: Sequence[str],
    out: str | Path,
    split: str | None = None,
    link: bool = True,
) -> Path:
    """Turn a list of image files and their labels (what a label file, a CSV or a ``.mat``
    file gives you) into the ImageFolder layout ``out/<split>/<class name>/<file>``.
    Files are linked (``link=True``, no copy) or copied. Returns the split's folder.

    Example:
        >>> import tempfile, pathlib
        >>> src = pathlib.Path(tempfile.mkdtemp())
        >>> for name in ("a.jpg", "b.jpg"):
        ...     Image.new("RGB", (8, 8)).save(src / name)
        >>> out = folder_from_labels([src / "a.jpg", src / "b.jpg"], [0, 1], ["cat", "dog"],
        ...                          src / "folder", split="train")
        >>> sorted(str(p.relative_to(out)) for p in out.rglob("*.jpg"))
        ['cat/a.jpg', 'dog/b.jpg']
    """
    if len(files) != len(labels):
        raise ValueError(f"{len(files)} files but {len(labels)} labels: one label per file")
    target = Path(out) / split if split else Path(out)
    for file, label in zip(files, labels, strict=True):
        file = Path(file)
        if not 0 <= int(label) < len(class_names):
            raise ValueError(f"label {label} of {file} is outside [0, {len(class_names)})")
        folder = target / class_names[int(label)].replace("/", "-")
        folder.mkdir(parents=True, exist_ok=True)
        dest = folder / file.name
        if dest.exists() or dest.is_symlink():
            continue
        if link:
            dest.symlink_to(file.resolve())
        else:
            shutil.copy2(file, dest)
    return target


def split_folder(source: str | Path, out: str | Path, valid: float = 0.2, test: float = 0.2,
                 seed: int = 0, link: bool = True) -> Path:  # fmt: skip
    """Split one folder of class folders (``source/<class>/*.jpg``, how photos usually
    start) into ``out/train``, ``out/valid`` and ``out/test``, class by class, so every
    class keeps its share in each split (at least one image per split when it can).
    Files are linked, not copied, unless ``link=False``. Returns ``out``.

    Example:
        >>> import tempfile, pathlib
        >>> src = generate_photo_folder(tempfile.mkdtemp(), per_class=10)
        >>> out = split_folder(src, pathlib.Path(tempfile.mkdtemp()) / "split")
        >>> [len(list((out / s / "sky").iterdir())) for s in ("train", "valid", "test")]
        [6, 2, 2]
    """
    from ..images import IMAGE_EXTENSIONS
    from .folder import _check_layout

    source, out = Path(source), Path(out)
    _check_layout(source)
    rng = np.random.default_rng(seed)
    classes = sorted(p.name for p in source.iterdir() if p.is_dir() and not p.name.startswith("."))
    for label, name in enumerate(classes):
        files = sorted(f for f in (source / name).iterdir() if f.suffix.lower() in IMAGE_EXTENSIONS)
        files = [files[i] for i in rng.permutation(len(files))]
        n_valid = max(1, round(len(files) * valid)) if valid and len(files) >= 3 else 0
        n_test = max(1, round(len(files) * test)) if test and len(files) >= 3 else 0
        parts = {"valid": files[:n_valid], "test": files[n_valid : n_valid + n_test],
                 "train": files[n_valid + n_test :]}  # fmt: skip
        for split, chosen in parts.items():
            folder_from_labels(chosen, [label] * len(chosen), classes, out, split, link)
    return out


def load_flowers102(root: str | Path | None = None, standin_per_class: int | None = None) -> Path:
    """Oxford Flowers-102 in ImageFolder layout, with its ``train/``, ``valid/`` and
    ``test/`` splits; returns the folder that holds them.

    Online: torchvision's ``Flowers102`` downloads the images (330 MB) and the label and
    split files once, and :func:`folder_from_labels` links each image into
    ``<split>/<class name>/``. With ``CNNLAB_OFFLINE=1``: a generated stand-in of five
    flower-like classes (:func:`generate_photo_folder`), announced by a banner, generated
    in the system's temporary folder (not beside your notebooks: it is cheap to make again)
    unless ``root`` is given, once for each number of photos per class.

    Example:
        >>> root = load_flowers102()  # doctest: +SKIP
        >>> sorted(p.name for p in root.iterdir())  # doctest: +SKIP
        ['test', 'train', 'valid']
    """
    if settings.offline_mode():
        settings.banner(
            f"{settings.OFFLINE_ENV}=1: Flowers-102 replaced by a GENERATED STAND-IN of five\n"
            "flower-like classes (told apart by their number of petals), photos of mixed\n"
            "sizes. Numbers you see are not Flowers-102 numbers. Unset it for the real data."
        )
        per = standin_per_class or settings.choose(full=40, fast=8)
        standins = (
            Path(root) if root is not None else Path(tempfile.gettempdir()) / "cnnlab-standins"
        )
        out = standins / f"flowers-standin-{per}-per-class"
        if not (out / ".complete").exists():
            for split, count, seed in (("train", per, 0), ("valid", max(2, per // 4), 1),
                                       ("test", max(2, per // 4), 2)):  # fmt: skip
                generate_photo_folder(out / split, "flowers", count, seed=seed)
            (out / ".complete").touch()
        return out
    from torchvision.datasets import Flowers102

    base = Path(root) if root is not None else settings.data_dir()
    out = base / "flowers102"
    if (out / ".complete").exists():
        return out
    names = list(getattr(Flowers102, "classes", None) or [f"flower {i + 1}" for i in range(102)])
    try:
        for split, name in (("train", "train"), ("val", "valid"), ("test", "test")):
            data = Flowers102(str(base), split=split, download=True)
            folder_from_labels(data._image_files, data._labels, names, out, split=name)
    except (OSError, RuntimeError) as error:
        raise DataUnavailableError(
            f"could not download Flowers-102 into {base}: {type(error).__name__}: {error}. Be "
            f"online once, or set {settings.OFFLINE_ENV}=1 for the generated stand-in."
        ) from error
    (out / ".complete").touch()
    return out


__all__ = [
    "FLOWER_CLASSES",
    "LAYOUT_CLASSES",
    "PHOTO_SIZES",
    "folder_from_labels",
    "generate_photo_folder",
    "load_flowers102",
    "save_sideways",
    "split_folder",
]

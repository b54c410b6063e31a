"""Your own images: an ImageFolder directory, checked, with errors that say what to do.

The layout is torchvision's ImageFolder: one sub-folder per class, images inside::

    my_data/
        cat/   001.jpg 002.png ...
        dog/   a.jpg b.jpg ...

A CIFAR-10 copy in that layout (``train/<class>/``, ``test/<class>/``) loads the same
way, one split at a time.
"""

from __future__ import annotations

import tarfile
import warnings
from collections.abc import Callable
from functools import partial
from pathlib import Path

from PIL import Image
from torchvision.datasets import ImageFolder

from ..errors import CnnlabError, CorruptImageError, DataUnavailableError, ImageTransformError
from ..images import IMAGE_EXTENSIONS, MAX_PIXELS, decode_image

LAYOUT_HINT = "expected one sub-folder per class with images inside, e.g. root/cat/001.jpg"


def _has_image_extension(path: Path | str) -> bool:
    return str(path).lower().endswith(IMAGE_EXTENSIONS)


def _check_layout(root: Path) -> None:
    if not root.exists():
        raise DataUnavailableError(
            f"data directory {root} does not exist: check the path, or create it ({LAYOUT_HINT})."
        )
    if not root.is_dir():
        raise DataUnavailableError(f"{root} is a file, not a directory ({LAYOUT_HINT}).")
    class_dirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not class_dirs:
        raise DataUnavailableError(
            f"data directory {root} has no class sub-folders: {LAYOUT_HINT}."
        )
    empty = [p.name for p in class_dirs if not any(_has_image_extension(f) for f in p.rglob("*"))]
    if empty:
        raise DataUnavailableError(
            f"class folder(s) {', '.join(empty)} in {root} hold no images "
            f"(looked for {', '.join(IMAGE_EXTENSIONS)}): add images or remove the folder."
        )


def _is_readable(path: str, max_pixels: int | None) -> bool:
    try:
        decode_image(path, max_pixels=max_pixels)
        return True
    except CorruptImageError:
        return False


class CheckedImageFolder(ImageFolder):
    """torchvision's ImageFolder, whose errors name the file and the way out.

    Use :func:`load_image_folder` rather than building it directly.
    """

    def __init__(
        self,
        root: str | Path,
        transform: Callable | None = None,
        target_transform: Callable | None = None,
        skip_corrupt: bool = False,
        max_pixels: int | None = MAX_PIXELS,
    ) -> None:
        root = Path(root).expanduser()
        _check_layout(root)
        super().__init__(
            str(root),
            transform=transform,
            target_transform=target_transform,
            loader=partial(decode_image, max_pixels=max_pixels),
            is_valid_file=_has_image_extension,
        )
        self.skipped: list[str] = []
        if skip_corrupt:
            kept = [(p, t) for p, t in self.samples if _is_readable(p, max_pixels)]
            self.skipped = sorted({p for p, _ in self.samples} - {p for p, _ in kept})
            if self.skipped:
                warnings.warn(
                    f"skipped {len(self.skipped)} unreadable image(s) of {len(self.samples)} "
                    f"in {root}, e.g. {self.skipped[0]}",
                    stacklevel=2,
                )
            self.samples = self.imgs = kept
            self.targets = [t for _, t in kept]

    def __getitem__(self, index: int):
        try:
            return super().__getitem__(index)
        except CnnlabError:
            raise
        except Exception as error:  # a transform that does not fit this image
            path = self.samples[index][0]
            try:
                size = "x".join(map(str, Image.open(path).size))
            except Exception:  # only for the message
                size = "?"
            raise ImageTransformError(
                f"{path} ({size} px) failed in the transform: {type(error).__name__}: {error}. "
                "Photos of any size need a resize before a fixed-size crop: use "
                "cnnlab.data.photo_train_transform(size) / photo_eval_transform(size), or add "
                "transforms.Resize(...) in front of your crop."
            ) from error


def load_image_folder(
    root: str | Path,
    transform: Callable | None = None,
    target_transform: Callable | None = None,
    skip_corrupt: bool = False,
    max_pixels: int | None = MAX_PIXELS,
) -> CheckedImageFolder:
    """Load an ImageFolder directory, checking its layout first.

    Images are read by :func:`cnnlab.images.decode_image`, exactly as ``Predictor`` and the
    web API read them (EXIF orientation, every mode to RGB, the first frame of an
    animation, ``max_pixels`` checked before decoding). A missing or empty directory, or a
    class folder without images, raises :class:`~cnnlab.errors.DataUnavailableError`. An
    unreadable image raises :class:`~cnnlab.errors.CorruptImageError` naming the file when
    it is loaded; with ``skip_corrupt=True`` every image is decoded once up front and the
    unreadable ones are dropped with a warning that counts them. A transform that fails
    on an image (a crop larger than a small photo) names the file and the fix.

    Example:
        >>> ds = load_image_folder("my_photos/train", transform=cifar10_eval_transform())  # doctest: +SKIP
        >>> ds.classes  # doctest: +SKIP
        ['cat', 'dog']
    """
    return CheckedImageFolder(root, transform, target_transform, skip_corrupt, max_pixels)


def extract_archive(archive: str | Path, destination: str | Path) -> Path:
    """Unpack a ``.tar.gz`` once into ``destination`` and return that folder.

    A marker file records a finished extraction, so a second call returns at once
    and an interrupted one starts again.

    Example:
        >>> root = extract_archive("cifar10-jpg.tar.gz", "data/cifar10-jpg")  # doctest: +SKIP
    """
    archive, destination = Path(archive).expanduser(), Path(destination).expanduser()
    marker = destination / ".extracted"
    if marker.exists():
        return destination
    if not archive.is_file():
        raise DataUnavailableError(f"archive {archive} does not exist: check the path.")
    destination.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive, "r:*") as tar:
        if hasattr(tarfile, "data_filter"):  # refuses absolute paths, links out of the tree
            tar.extractall(destination, filter="data")
        else:  # pragma: no cover - Python < 3.10.12
            tar.extractall(destination)
    marker.touch()
    return destination

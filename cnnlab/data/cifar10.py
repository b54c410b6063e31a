"""CIFAR-10 from wherever it can come: torchvision's download, a local copy, or the stand-in.

Which source :func:`load_cifar10` uses, in order:

1. ``CNNLAB_OFFLINE=1``: the generated stand-in (announced by a banner).
2. ``CNNLAB_CIFAR10_DIR`` (or the ``folder=`` argument): a copy in ImageFolder layout,
   ``train/<class>/*.jpg`` and ``test/<class>/*.jpg``, or a ``.tar.gz`` of one.
3. torchvision's ``CIFAR10(download=True)`` into the data root (``CNNLAB_DATA_DIR``).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from torch.utils.data import Dataset

from .. import settings
from ..errors import DataUnavailableError
from .folder import extract_archive, load_image_folder
from .standin import StandInCIFAR10

CIFAR10_CLASSES = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)


def _ways_out(root: Path, cause: BaseException) -> str:
    return (
        f"could not download CIFAR-10 into {root}: {type(cause).__name__}: {cause}\n"
        "Three ways out:\n"
        f"  1. put the official archive cifar-10-python.tar.gz (from "
        f"https://www.cs.toronto.edu/~kriz/cifar.html) in {root} and run again;\n"
        f"  2. point {settings.CIFAR10_DIR_ENV} at a copy in ImageFolder layout "
        "(train/<class>/*.jpg, test/<class>/*.jpg) or a .tar.gz of one;\n"
        f"  3. set {settings.OFFLINE_ENV}=1 to use the generated stand-in data set."
    )


def prepare_cifar10_folder(folder: str | Path) -> Path:
    """Return the folder that holds ``train/`` and ``test/`` of a CIFAR-10 ImageFolder copy.

    Accepts that folder, its parent, or a ``.tar.gz`` of it, which is unpacked once
    under the data root (``CNNLAB_DATA_DIR``).

    Example:
        >>> prepare_cifar10_folder("../shared/data/cifar10-jpg.tar.gz")  # doctest: +SKIP
        PosixPath('data/cifar10-jpg')
    """
    folder = Path(folder).expanduser()
    if folder.is_file() and folder.name.endswith((".tar.gz", ".tgz", ".tar")):
        name = folder.name.split(".")[0]
        folder = extract_archive(folder, settings.data_dir() / name)
    # An archive may wrap everything in one top-level folder.
    if not (folder / "train").is_dir():
        inner = [p for p in folder.iterdir() if p.is_dir()] if folder.is_dir() else []
        if len(inner) == 1 and (inner[0] / "train").is_dir():
            folder = inner[0]
    return folder


def load_cifar10(
    train: bool = True,
    transform: Callable | None = None,
    *,
    folder: str | Path | None = None,
    root: str | Path | None = None,
    download: bool = True,
    standin_size: int | None = None,
) -> Dataset:
    """Load one split of CIFAR-10 (or its offline stand-in), items ``(image, label)``.

    Args:
        train: the 50,000-image training split, or the 10,000-image test split.
        transform: applied to each PIL image (see :mod:`cnnlab.data.transforms`).
        folder: an ImageFolder copy (or ``.tar.gz``); defaults to ``CNNLAB_CIFAR10_DIR``.
        root: where torchvision downloads to; defaults to ``CNNLAB_DATA_DIR``.
        download: let torchvision download when the files are missing.
        standin_size: size of the stand-in split in offline mode.

    The returned data set has ``classes`` and ``targets`` whichever the source.

    Example:
        >>> train_set = load_cifar10(train=True, transform=cifar10_train_transform())  # doctest: +SKIP
        >>> image, label = train_set[0]  # doctest: +SKIP
    """
    split = "train" if train else "test"
    if settings.offline_mode():
        settings.banner(
            f"{settings.OFFLINE_ENV}=1: CIFAR-10 {split} split replaced by the GENERATED STAND-IN\n"
            f"({', '.join(StandInCIFAR10.classes)}).\n"
            "Numbers you see are not CIFAR-10 numbers. Unset it to use the real data."
        )
        return StandInCIFAR10(train=train, transform=transform, size=standin_size)

    folder = Path(folder).expanduser() if folder is not None else settings.cifar10_dir()
    if folder is not None:
        folder = prepare_cifar10_folder(folder)
        dataset = load_image_folder(folder / split, transform=transform)
        if tuple(dataset.classes) != CIFAR10_CLASSES:
            raise DataUnavailableError(
                f"{folder / split} has classes {dataset.classes}, not CIFAR-10's "
                f"{list(CIFAR10_CLASSES)}: point {settings.CIFAR10_DIR_ENV} at a CIFAR-10 copy, "
                "or use load_image_folder() for other data."
            )
        return dataset

    from torchvision.datasets import CIFAR10

    root = Path(root).expanduser() if root is not None else settings.data_dir()
    try:
        return CIFAR10(str(root), train=train, transform=transform, download=download)
    except (OSError, RuntimeError) as err:  # URLError, SSL errors, bad checksum, missing files
        raise DataUnavailableError(_ways_out(root, err)) from err

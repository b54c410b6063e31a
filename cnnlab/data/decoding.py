"""Decoding a whole image data set once into one uint8 tensor (:func:`decode_images`), with
an on-disk cache next to the images that is checked against the files on every load.
Under torchrun, one process per machine decodes and writes the cache while the others
wait, then read it."""

from __future__ import annotations

import hashlib
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset, Subset

from .. import distributed, settings
from ..progress import tqdm

CACHE_FOLDER = ".cnnlab-cache"


@dataclass
class DecodedImages:
    """A whole image data set as tensors: ``images`` uint8 ``(N, C, H, W)``, ``labels`` int64."""

    images: torch.Tensor
    labels: torch.Tensor
    classes: list[str]

    def __len__(self) -> int:
        return len(self.labels)


def _folder_key(samples: Sequence[tuple[str, int]]) -> str:
    """A fingerprint of an image folder: paths, sizes and modification times."""
    digest = hashlib.sha256()
    for path, label in samples:
        stat = os.stat(path)
        digest.update(f"{path}|{label}|{stat.st_size}|{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:16]


def _decode_items(dataset: Dataset, desc: str,
                  indices: Sequence[int] | None = None) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
    """Decode item by item (``indices`` of ``dataset``, or all), bypassing its transform."""
    saved = getattr(dataset, "transform", None)
    if saved is not None:
        dataset.transform = None  # type: ignore[attr-defined]
    try:
        images, labels = [], []
        chosen = range(len(dataset)) if indices is None else indices  # type: ignore[arg-type]
        for i in tqdm(chosen, desc=desc, leave=False):
            image, label = dataset[i]
            images.append(np.asarray(image.convert("RGB"), dtype=np.uint8))
            labels.append(int(label))
    finally:
        if saved is not None:
            dataset.transform = saved  # type: ignore[attr-defined]
    sizes = {a.shape for a in images}
    if len(sizes) > 1:
        raise ValueError(
            f"images of {len(sizes)} different sizes ({sorted(sizes)[:3]} ...): a tensor "
            "loader needs one size. Resize the images first, or use make_loader()."
        )
    stacked = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous()
    return stacked, torch.tensor(labels, dtype=torch.int64)


def cache_folder(root: Path) -> Path:
    """Where the decoded copy of the image folder ``root`` is kept: ``.cnnlab-cache`` next
    to it, or under the data folder (``CNNLAB_DATA_DIR``) when that place is read-only
    (a shared data set, a read-only mount).

    Example:
        >>> cache_folder(Path("data/cifar10/train")).name
        '.cnnlab-cache'
    """
    beside = root.parent / CACHE_FOLDER
    probe = beside if beside.exists() else root.parent
    if os.access(probe, os.W_OK):
        return beside
    return settings.data_dir() / CACHE_FOLDER


def decode_images(dataset: Dataset, cache: bool | str | Path = True) -> DecodedImages:
    """Decode a whole image data set into one uint8 tensor, once, with an on-disk cache.

    Works for torchvision's ``CIFAR10`` (already arrays), the offline stand-in, and any
    ``ImageFolder`` (JPEG/PNG files of one size). The data set's transform is ignored:
    augmentation happens later, per batch, in :class:`TensorLoader`.

    Args:
        cache: for an ImageFolder, ``True`` keeps the decoded tensor in a cache folder
            (:func:`cache_folder`), named by a fingerprint of the files' paths, sizes and
            modification times; a path picks the file; ``False`` decodes every time. The
            fingerprint is checked on every load, so a cache never serves another data
            set's images, and a changed folder is decoded again. Writes are atomic, with
            a temporary file per process (two processes never corrupt each other), and a
            killed writer's temporary file is removed by the next write.

    Example:
        >>> data = decode_images(StandInCIFAR10(size=20))
        >>> data.images.dtype, tuple(data.images.shape), len(data.classes)
        (torch.uint8, (20, 3, 32, 32), 10)
    """

    base, indices = dataset, None
    if isinstance(dataset, Subset):  # subset(...) of a data set: decode only its items
        base, indices = dataset.dataset, list(dataset.indices)
    classes = list(getattr(base, "classes", []))
    data = getattr(base, "data", None)
    if isinstance(data, np.ndarray) and data.ndim == 4 and data.dtype == np.uint8:
        targets = list(base.targets)  # type: ignore[attr-defined]
        if indices is not None:
            data, targets = data[indices], [targets[i] for i in indices]
        images = torch.from_numpy(np.ascontiguousarray(data)).permute(0, 3, 1, 2).contiguous()
        return DecodedImages(images, torch.as_tensor(targets, dtype=torch.int64), classes)
    samples = getattr(dataset, "samples", None)
    if samples is None or cache is False:
        return DecodedImages(*_decode_items(base, "decoding images", indices), classes)
    root = Path(getattr(dataset, "root", "."))
    key = _folder_key(samples)
    if cache is True:
        cache = cache_folder(root) / f"{root.name}-{key}.pt"
    cache = Path(cache)
    with distributed.local_main_first():  # under torchrun: one process per machine decodes
        return _cached(dataset, root, key, cache, classes)


def _cached(dataset: Dataset, root: Path, key: str, cache: Path, classes: list) -> DecodedImages:
    from ..checkpoints import CheckpointError, atomic_save, safe_load

    if cache.exists():
        try:
            saved = safe_load(cache)
        except CheckpointError as error:
            warnings.warn(f"ignoring the unreadable decode cache {cache} ({error}); decoding "
                          "again", stacklevel=2)  # fmt: skip
        else:
            if isinstance(saved, dict) and saved.get("fingerprint") == key:
                return DecodedImages(saved["images"], saved["labels"], saved["classes"])
            warnings.warn(f"the decode cache {cache} holds another data set (or an older "
                          f"version of {root}): decoding {root} again and replacing it.",
                          stacklevel=2)  # fmt: skip
    images, labels = _decode_items(dataset, f"decoding {root.name} once (cached after)")
    atomic_save({"fingerprint": key, "images": images, "labels": labels, "classes": classes},
                cache)  # fmt: skip
    return DecodedImages(images, labels, classes)


__all__ = ["CACHE_FOLDER", "DecodedImages", "cache_folder", "decode_images"]

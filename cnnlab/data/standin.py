"""A generated stand-in for CIFAR-10, for offline readers, tests and smoke runs.

Ten classes of 32x32 RGB pictures -- filled shapes and textures drawn in random
colours, at random positions, sizes and angles, with pixel noise. A split is a pure
function of ``(seed, split, size)``, so the same seed gives the same data on every
machine (and a process draws it once: :func:`generate_standin` keeps the last few).
The classes are easy for a person and learnable for a small CNN
(it clearly beats chance within a CPU minute), but not trivial: shapes vary in
size and angle, colours carry no information, and noise hides fine detail.

The data set mimics torchvision's ``CIFAR10``: ``classes``, ``class_to_idx``,
``data`` (an ``(N, 32, 32, 3)`` uint8 array), ``targets`` and ``(PIL image, label)``
items passed through ``transform=``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import numpy as np
from PIL import Image
from torch.utils.data import Dataset

from .. import settings

STANDIN_CLASSES = (
    "disk",
    "square",
    "triangle",
    "plus",
    "ring",
    "h-stripes",
    "v-stripes",
    "diagonal",
    "checker",
    "dots",
)
IMAGE_SIZE = 32


def _params(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    """Draw per-image drawing parameters, shaped (n, 1, 1) to broadcast over pixels."""

    def col(low: float, high: float) -> np.ndarray:
        return rng.uniform(low, high, size=(n, 1, 1))

    return {
        "cx": col(10, 22),
        "cy": col(10, 22),
        "size": col(6, 11),
        "angle": col(0, np.pi),
        "period": col(5, 9),
        "phase": col(0, 2 * np.pi),
    }


def _masks(label: int, p: dict[str, np.ndarray]) -> np.ndarray:
    """Boolean foreground masks of shape (n, 32, 32) for one class."""
    yy, xx = np.mgrid[0:IMAGE_SIZE, 0:IMAGE_SIZE].astype(np.float64)
    dx, dy = xx[None] - p["cx"], yy[None] - p["cy"]
    cos, sin = np.cos(p["angle"]), np.sin(p["angle"])
    u, v = dx * cos + dy * sin, -dx * sin + dy * cos  # rotated coordinates
    r, period, phase = p["size"], p["period"], p["phase"]
    wave = 2 * np.pi / period
    if label == 0:  # disk
        return dx**2 + dy**2 < r**2
    if label == 1:  # square, rotated
        return np.maximum(np.abs(u), np.abs(v)) < r * 0.8
    if label == 2:  # triangle, rotated: inside three half-planes
        inside = np.ones_like(u, dtype=bool)
        for k in range(3):
            a = 2 * np.pi * k / 3
            inside &= u * np.cos(a) + v * np.sin(a) < r * 0.5
        return inside
    if label == 3:  # plus sign, rotated
        arm = r * 0.3
        return ((np.abs(u) < arm) & (np.abs(v) < r)) | ((np.abs(v) < arm) & (np.abs(u) < r))
    if label == 4:  # ring
        d2 = dx**2 + dy**2
        return (d2 < r**2) & (d2 > (r * 0.55) ** 2)
    if label == 5:  # horizontal stripes over the whole image
        return np.sin(yy[None] * wave + phase) > 0
    if label == 6:  # vertical stripes
        return np.sin(xx[None] * wave + phase) > 0
    if label == 7:  # diagonal stripes (either diagonal)
        sign = np.where(p["angle"] < np.pi / 2, 1.0, -1.0)
        return np.sin((xx[None] + sign * yy[None]) * wave / np.sqrt(2) + phase) > 0
    if label == 8:  # checkerboard
        return np.sin(xx[None] * wave + phase) * np.sin(yy[None] * wave + phase) > 0
    if label == 9:  # a grid of dots
        return np.cos(xx[None] * wave + phase) * np.cos(yy[None] * wave + phase) > 0.55
    raise ValueError(f"label must be in [0, {len(STANDIN_CLASSES)}), got {label}")


def generate_standin(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Generate ``n`` stand-in images and labels, balanced over the ten classes.

    Returns ``(images, labels)``: an ``(n, 32, 32, 3)`` uint8 array and an ``(n,)``
    int64 array. The same ``(n, seed)`` always gives the same arrays, generated once per
    process (a smoke run loads the same split many times) and copied out.

    Example:
        >>> images, labels = generate_standin(20, seed=1)
        >>> images.shape, images.dtype, sorted(set(labels.tolist()))[:3]
        ((20, 32, 32, 3), dtype('uint8'), [0, 1, 2])
    """
    images, labels = _generated(n, seed)
    return images.copy(), labels.copy()


@functools.lru_cache(maxsize=4)
def _generated(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.arange(n) % len(STANDIN_CLASSES)).astype(np.int64)
    images = np.empty((n, IMAGE_SIZE, IMAGE_SIZE, 3), dtype=np.uint8)
    # Colours: a random background and a foreground far from it in every channel,
    # so colour never tells the class but the shape is always visible.
    background = rng.uniform(0, 255, size=(n, 3))
    offset = rng.uniform(90, 165, size=(n, 3))
    foreground = (background + offset) % 256
    noise_sigma = rng.uniform(4, 22, size=(n, 1, 1, 1))
    params = _params(rng, n)
    noise = rng.standard_normal((n, IMAGE_SIZE, IMAGE_SIZE, 3))
    for label in range(len(STANDIN_CLASSES)):
        idx = np.flatnonzero(labels == label)
        if idx.size == 0:
            continue
        mask = _masks(label, {k: v[idx] for k, v in params.items()})[..., None]
        picture = np.where(mask, foreground[idx, None, None, :], background[idx, None, None, :])
        picture = picture + noise[idx] * noise_sigma[idx]
        images[idx] = np.clip(np.rint(picture), 0, 255).astype(np.uint8)
    images.flags.writeable = labels.flags.writeable = False  # shared by every caller
    return images, labels


class StandInCIFAR10(Dataset):
    """The offline stand-in with torchvision ``CIFAR10``'s interface.

    Args:
        train: the training split (``True``) or the test split.
        transform: applied to each PIL image, as in torchvision.
        target_transform: applied to each label.
        size: number of images (default 10,000 for train, 2,000 for test; in a smoke run,
            ``CNNLAB_FAST=1``, 4,096 and 1,024, more than any smoke run takes).
        seed: the data seed; train and test are drawn from different streams.

    Example:
        >>> ds = StandInCIFAR10(train=False, size=50)
        >>> image, label = ds[0]
        >>> image.size, ds.classes[label] in ds.classes
        ((32, 32), True)
    """

    classes = list(STANDIN_CLASSES)

    def __init__(
        self,
        train: bool = True,
        transform: Callable | None = None,
        target_transform: Callable | None = None,
        size: int | None = None,
        seed: int = 0,
    ) -> None:
        self.train = train
        self.transform = transform
        self.target_transform = target_transform
        if size is None:
            size = settings.choose(full=10_000, fast=4_096) if train else settings.choose(
                full=2_000, fast=1_024)  # fmt: skip
        self.data, labels = generate_standin(size, seed=seed * 2 + (0 if train else 1))
        self.targets = labels.tolist()
        self.class_to_idx = {name: i for i, name in enumerate(self.classes)}

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, index: int):
        image = Image.fromarray(self.data[index])
        target = self.targets[index]
        if self.transform is not None:
            image = self.transform(image)
        if self.target_transform is not None:
            target = self.target_transform(target)
        return image, target

    def __repr__(self) -> str:
        split = "train" if self.train else "test"
        return f"StandInCIFAR10(split={split}, size={len(self)}, classes={len(self.classes)})"

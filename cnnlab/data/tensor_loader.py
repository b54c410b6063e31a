"""A tensor-resident data path: decode once (:mod:`cnnlab.data.decoding`), keep one uint8
tensor, augment whole batches.

A ``DataLoader`` over image files decodes every JPEG with PIL and transforms it one image
at a time, on every epoch. CIFAR-10 is small (50,000 x 3 x 32 x 32 bytes = 154 MB), so we
decode it once into a single uint8 tensor (cached on disk next to the data, so the next
run starts in seconds), keep it on the training device, and do the random crop, flip and
normalisation for a whole batch with a few tensor operations.

:class:`TensorLoader` iterates like a ``DataLoader`` (``len()``, ``(images, labels)``
batches, a ``generator`` that ``fit`` checkpoints), so ``fit`` and ``evaluate`` take
either. With the same seed it visits the images in the same order as
``make_loader(..., shuffle=True, seed=seed)``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import torch
from torch.utils.data import Dataset, RandomSampler

from .. import distributed
from .decoding import DecodedImages, cache_folder, decode_images  # noqa: F401  (re-exported)
from .transforms import CIFAR10_MEAN, CIFAR10_STD


def _reflect(index: torch.Tensor, size: int) -> torch.Tensor:
    """Map positions in a reflect-padded axis back to ``[0, size)`` (as ``F.pad`` does)."""
    index = index.abs()
    return torch.where(index > size - 1, 2 * (size - 1) - index, index)


def crop_flip(images: torch.Tensor, dy: torch.Tensor, dx: torch.Tensor, flips: torch.Tensor,
              padding: int = 4) -> torch.Tensor:  # fmt: skip
    """Crop every image of a batch at its own offsets ``dy, dx`` in ``[0, 2 * padding]`` of a
    reflect-padded copy, and mirror the images where ``flips`` is True.

    Nothing is padded or converted: the reflected row and column indices are computed
    directly, and two ``gather`` calls move every pixel of every image at once, in the
    images' own dtype (uint8 stays uint8) and on their device. ``dy``, ``dx`` and
    ``flips`` must be on that device too.

    Example:
        >>> x = torch.arange(16, dtype=torch.uint8).view(1, 1, 4, 4)
        >>> x[0, 0, 0]
        tensor([0, 1, 2, 3], dtype=torch.uint8)
        >>> one = torch.tensor([1])  # offset == padding: the crop is the image itself
        >>> crop_flip(x, one, one, torch.tensor([True]), padding=1)[0, 0, 0]  # mirrored
        tensor([3, 2, 1, 0], dtype=torch.uint8)
        >>> crop_flip(x, one - 1, one + 1, torch.tensor([False]), padding=1)[0, 0, 0]
        tensor([5, 6, 7, 6], dtype=torch.uint8)
    """
    n, c, h, w = images.shape
    device = images.device
    rows = _reflect(torch.arange(h, device=device) + dy[:, None] - padding, h)
    cols = torch.arange(w, device=device)
    cols = torch.where(flips[:, None], w - 1 - cols, cols) + dx[:, None] - padding
    cols = _reflect(cols, w)
    out = images.gather(2, rows[:, None, :, None].expand(n, c, h, w))
    return out.gather(3, cols[:, None, None, :].expand(n, c, h, w))


def draw_crop_flip(n: int, padding: int = 4, flip: bool = True,
                   generator: torch.Generator | None = None) -> tuple[torch.Tensor, ...]:  # fmt: skip
    """Draw ``dy``, ``dx`` (each in ``[0, 2 * padding]``) and coin flips for ``n`` images, in
    that order, on the CPU (so a seed gives the same augmentation on every device).

    Example:
        >>> dy, dx, flips = draw_crop_flip(3, generator=torch.Generator().manual_seed(0))
        >>> dy.shape, flips.dtype
        (torch.Size([3]), torch.bool)
    """
    dy = torch.randint(0, 2 * padding + 1, (n,), generator=generator)
    dx = torch.randint(0, 2 * padding + 1, (n,), generator=generator)
    flips = torch.rand(n, generator=generator) < 0.5 if flip else torch.zeros(n, dtype=torch.bool)
    return dy, dx, flips


def random_crop_flip(
    images: torch.Tensor,
    padding: int = 4,
    flip: bool = True,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Random crop of a reflect-padded batch, and random horizontal flip, for all at once.

    Each image gets its own offsets ``dy, dx`` in ``[0, 2 * padding]`` and its own coin
    flip (:func:`draw_crop_flip`), applied by :func:`crop_flip`: no Python loop over
    images, no padding copy, the dtype kept.

    Example:
        >>> x = torch.arange(2 * 1 * 4 * 4, dtype=torch.uint8).view(2, 1, 4, 4)
        >>> random_crop_flip(x, padding=1, generator=torch.Generator().manual_seed(0)).shape
        torch.Size([2, 1, 4, 4])
    """
    draws = draw_crop_flip(len(images), padding, flip, generator)
    dy, dx, flips = (t.to(images.device) for t in draws)
    return crop_flip(images, dy, dx, flips, padding)


class TensorLoader:
    """Batches of normalised images from a uint8 tensor on the training device.

    Args:
        data: :class:`DecodedImages` (or use :meth:`from_dataset`).
        batch_size: images per batch.
        shuffle: a new random order every epoch (training).
        augment: random crop (``padding`` px, reflect) and flip per image, per batch.
        flip: with ``augment``: ``"random"`` (a coin per image per epoch), ``"alternate"``
            (a coin per image once, then every image flipped on every other epoch, so each
            one is seen both ways in any two epochs: airbench's trick) or ``"none"``.
        mean, std: normalisation statistics (CIFAR-10's by default).
        device: where images live and batches are made (defaults to the CPU).
        seed: seeds the shuffling and the augmentation with a generator of the loader's
            own; without it they draw from torch's global RNG, as a DataLoader does.
        drop_last: skip the last, smaller batch.
        channels_last: hand out batches in ``torch.channels_last`` memory format.
        resize: hand out ``resize`` x ``resize`` batches (bilinear, antialiased), e.g. for
            *progressive resizing*: cheaper low-resolution epochs first. It is an
            attribute: change it between epochs (``loader.resize = None`` for full size).

    The labels are checked once, here, on the host (``fit`` then compares only
    ``num_classes`` with the model's outputs: no per-step check). Each epoch draws its
    order and its augmentation on the CPU generator (the same draws on every device) and
    copies them to the device once; a step only indexes tensors already there, so the
    loader never makes the GPU wait.

    Example:
        >>> loader = TensorLoader.from_dataset(StandInCIFAR10(size=100), batch_size=32,
        ...                                    shuffle=True, augment=True, seed=0)
        >>> images, labels = next(iter(loader))
        >>> len(loader), images.dtype, tuple(images.shape), labels.dtype
        (4, torch.float32, (32, 3, 32, 32), torch.int64)
    """

    num_workers = 0  # fit() asks: everything happens in this process
    batches_checked = True  # finite float32 images and labels in [0, num_classes), checked once

    def __init__(
        self,
        data: DecodedImages,
        batch_size: int = 512,
        shuffle: bool = False,
        augment: bool = False,
        *,
        padding: int = 4,
        flip: str = "random",
        mean: Sequence[float] = CIFAR10_MEAN,
        std: Sequence[float] = CIFAR10_STD,
        device: torch.device | str = "cpu",
        seed: int | None = None,
        drop_last: bool = False,
        channels_last: bool = False,
        resize: int | None = None,
    ) -> None:
        if data.images.dtype != torch.uint8 or data.images.ndim != 4:
            raise ValueError(
                f"expected uint8 images of shape (N, C, H, W), got {data.images.dtype} "
                f"{tuple(data.images.shape)}: build the data with decode_images()."
            )
        if not all(float(s) > 0 for s in std):
            raise ValueError(f"std must be positive in every channel, got {tuple(std)}: "
                             "a zero would divide by zero and give infinite inputs.")  # fmt: skip
        self.num_classes = _checked_class_count(data)
        self.device = torch.device(device)
        self.images = data.images.to(self.device)
        self.labels = data.labels.to(self.device)
        self.classes = data.classes
        self.batch_size, self.shuffle, self.augment = batch_size, shuffle, augment
        self.padding, self.drop_last, self.channels_last = padding, drop_last, channels_last
        if flip not in ("random", "alternate", "none"):
            raise ValueError(f"flip must be 'random', 'alternate' or 'none', got {flip!r}")
        self.flip, self.epoch = flip, 1
        self.resize = resize
        self.mean = torch.tensor(mean, dtype=torch.float32, device=self.device).view(-1, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32, device=self.device).view(-1, 1, 1)
        # Without a seed, like a DataLoader without a generator: torch's global RNG
        # (which seed_everything seeds) drives the shuffling and the augmentation.
        self.generator = torch.Generator().manual_seed(seed) if seed is not None else None
        if flip == "alternate":  # each image's own starting side, fixed for the whole run
            base = torch.Generator().manual_seed(seed + 1 if seed is not None else
                                                 int(torch.randint(2**31, (1,))))  # fmt: skip
            self._first_flips = torch.rand(len(self.labels), generator=base) < 0.5

    def set_epoch(self, epoch: int) -> None:
        """Tell the loader which epoch (1-based) comes next; ``fit`` calls it. Only the
        ``"alternate"`` flip uses it, so a resumed run flips as an uninterrupted one."""
        self.epoch = epoch

    @classmethod
    def from_dataset(cls, dataset: Dataset, *, cache: bool | str | Path = True,
                     **options) -> TensorLoader:  # fmt: skip
        """Decode ``dataset`` (see :func:`decode_images`) and wrap it; ``options`` as above."""
        return cls(decode_images(dataset, cache=cache), **options)

    @property
    def dataset(self) -> DecodedImages:
        """The decoded images (``len(loader.dataset)`` counts images, as for a DataLoader)."""
        return DecodedImages(self.images, self.labels, self.classes)

    def _count(self) -> int:
        """Images this process sees per epoch (its shard under torchrun)."""
        n, world = len(self.labels), distributed.world_size()
        if world == 1:
            return n
        return n // world if self.shuffle else len(range(distributed.rank(), n, world))

    def __len__(self) -> int:
        n = self._count()
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def _order(self) -> torch.Tensor:
        # Same draws as a DataLoader sharing this generator: one base seed per epoch
        # (which a DataLoader hands to its workers), then RandomSampler's permutation.
        torch.empty((), dtype=torch.int64).random_(generator=self.generator)
        n = len(self.labels)
        if not self.shuffle:
            return torch.arange(n)
        return torch.tensor(list(RandomSampler(range(n), generator=self.generator)))

    def _batch(self, index: torch.Tensor, draws: tuple[torch.Tensor, ...] | None) -> torch.Tensor:
        images = self.images[index]
        if draws is not None:
            images = crop_flip(images, *draws, padding=self.padding)
        # ToTensor's and Normalize's arithmetic, in their order: results match bit for bit
        x = images.float().div_(255).sub_(self.mean).div_(self.std)
        if self.resize is not None and self.resize != x.shape[-1]:
            x = torch.nn.functional.interpolate(x, size=(self.resize, self.resize),
                                                mode="bilinear", antialias=True)  # fmt: skip
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        order = self._order()  # the same on every process: same seed, same draws
        draws = draw_crop_flip(len(order), self.padding, flip=self.flip == "random",
                               generator=self.generator) if self.augment else None  # fmt: skip
        if draws is not None and self.flip == "alternate":
            flips = self._first_flips[order] ^ (self.epoch % 2 == 0)
            draws = (draws[0], draws[1], flips)
        self.epoch += 1
        keep = distributed.shard(torch.arange(len(order)), drop_last=self.shuffle)
        order = order[keep]  # this process's shard (all of it when alone)
        draws = tuple(t[keep] for t in draws) if draws is not None else None
        stop = min(len(self) * self.batch_size, len(order))
        # one copy to the device per epoch; every step below only indexes on the device
        order = order.to(self.device, non_blocking=True)
        if draws is not None:
            draws = tuple(t.to(self.device, non_blocking=True) for t in draws)
        for start in range(0, stop, self.batch_size):
            index = order[start : start + self.batch_size]
            step_draws = tuple(t[start : start + self.batch_size] for t in draws) \
                if draws is not None else None  # fmt: skip
            yield self._batch(index, step_draws), self.labels[index]


def _checked_class_count(data: DecodedImages) -> int:
    """Labels must be whole numbers in ``[0, number of classes)``: checked once, on the host."""
    from ..errors import LabelError

    labels = data.labels
    if labels.dtype not in (torch.int64, torch.int32, torch.int16, torch.uint8):
        raise LabelError(f"labels must be integer class indices, got dtype {labels.dtype}: "
                         "convert them with labels.long().")  # fmt: skip
    if len(labels) == 0:
        return len(data.classes)
    low, high = torch.aminmax(labels.cpu())
    count = len(data.classes) or int(high) + 1
    if int(low) < 0 or int(high) >= count:
        bad = int(low) if int(low) < 0 else int(high)
        raise LabelError(f"labels must be in [0, {count}) for the {count} classes "
                         f"{list(data.classes)[:5]}..., found {bad}: labels start at 0, one per "
                         "class in DecodedImages.classes.")  # fmt: skip
    return count

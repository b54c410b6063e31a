"""Splitting data sets and making DataLoaders with defaults that work in notebooks."""

from __future__ import annotations

import os
import sys

import torch
from torch.utils.data import (
    DataLoader,
    Dataset,
    DistributedSampler,
    Subset,
    TensorDataset,
    default_collate,
)

from .. import distributed
from ..errors import InputShapeError
from .decoding import DecodedImages


def collate_images(batch: list):
    """``default_collate`` that explains images of different sizes instead of PyTorch's
    "stack expects each tensor to be equal size": photos come in every shape, and a batch
    needs one.

    Example:
        >>> collate_images([(torch.zeros(3, 64, 85), 0), (torch.zeros(3, 64, 64), 1)])
        Traceback (most recent call last):
        ...
        cnnlab.errors.InputShapeError: the images of this batch have different sizes ...
    """
    try:
        return default_collate(batch)
    except RuntimeError as error:
        if "equal size" not in str(error):
            raise
        images = [item[0] if isinstance(item, (tuple, list)) else item for item in batch]
        sizes = sorted({tuple(x.shape) for x in images if isinstance(x, torch.Tensor)})
        raise InputShapeError(
            f"the images of this batch have different sizes ({', '.join(map(str, sizes[:4]))}"
            f"{', ...' if len(sizes) > 4 else ''}): a batch needs one size. Add a crop to a fixed "
            "size to the transform: photo_eval_transform(size) or photo_train_transform(size) "
            "(or Resize(s) then CenterCrop(s)). Resize(s) alone keeps the aspect ratio, so a "
            "non-square photo stays non-square."
        ) from error


def split_indices(n: int, val_fraction: float = 0.1, seed: int = 0) -> tuple[list[int], list[int]]:
    """Shuffle ``range(n)`` with ``seed`` and cut it into train and validation indices.

    Example:
        >>> train_idx, val_idx = split_indices(10, val_fraction=0.2, seed=0)
        >>> len(train_idx), len(val_idx)
        (8, 2)
    """
    if not 0 < val_fraction < 1:
        raise ValueError(f"val_fraction must be between 0 and 1 (exclusive), got {val_fraction}")
    n_val = max(1, round(n * val_fraction))
    if n_val >= n:
        raise ValueError(f"a data set of {n} items is too small to split off {val_fraction:.0%}")
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).tolist()
    return order[n_val:], order[:n_val]


def train_val_split(
    dataset: Dataset,
    val_fraction: float = 0.1,
    seed: int = 0,
    val_dataset: Dataset | None = None,
) -> tuple[Subset, Subset]:
    """Split a data set into seeded train and validation subsets.

    Validation images should not be augmented: pass the same data loaded with the
    evaluation transform as ``val_dataset`` and the validation subset is cut from it,
    with the same indices.

    Example:
        >>> full = load_cifar10(train=True, transform=cifar10_train_transform())  # doctest: +SKIP
        >>> plain = load_cifar10(train=True, transform=cifar10_eval_transform())  # doctest: +SKIP
        >>> train_set, val_set = train_val_split(full, 0.1, seed=0, val_dataset=plain)  # doctest: +SKIP
    """
    n = len(dataset)  # type: ignore[arg-type]
    if val_dataset is not None and len(val_dataset) != n:  # type: ignore[arg-type]
        raise ValueError(
            f"val_dataset has {len(val_dataset)} items but dataset has {n}: "  # type: ignore[arg-type]
            "they must be the same data with different transforms."
        )
    train_idx, val_idx = split_indices(n, val_fraction, seed)
    return Subset(dataset, train_idx), Subset(val_dataset or dataset, val_idx)


def subset(dataset: Dataset | DecodedImages, n: int | None,
           seed: int = 0) -> Dataset | DecodedImages:  # fmt: skip
    """Return ``n`` items chosen at random with ``seed`` (all items when ``n`` is None).

    Smoke runs use it to shrink data sets: ``subset(train_set, choose(None, 512))``. A
    :class:`~cnnlab.data.DecodedImages` gives a ``DecodedImages`` of the chosen images.

    Example:
        >>> small = subset(StandInCIFAR10(size=100), 10)
        >>> len(small)
        10
    """
    size = len(dataset)  # type: ignore[arg-type]
    if n is None or n >= size:
        return dataset
    order = torch.randperm(size, generator=torch.Generator().manual_seed(seed))[:n].sort().values
    if isinstance(dataset, DecodedImages):
        return DecodedImages(dataset.images[order], dataset.labels[order], dataset.classes)
    return Subset(dataset, order.tolist())


class ClassSubset(Dataset):
    """The items of some classes only, with labels renumbered ``0 .. len(classes) - 1``.

    Built by :func:`class_subset`; has ``classes`` and ``targets`` like the data set it
    comes from.
    """

    def __init__(self, dataset: Dataset, indices: list[int], classes: list[str],
                 relabel: dict[int, int]) -> None:  # fmt: skip
        self.dataset, self.indices, self.classes = dataset, indices, classes
        self._relabel = relabel
        self.targets = [relabel[int(dataset.targets[i])] for i in indices]  # type: ignore[attr-defined]

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int):
        item, label = self.dataset[self.indices[i]]
        return item, self._relabel[int(label)]


def class_subset(
    dataset: Dataset, classes: list[str], per_class: int | None = None, seed: int = 0
) -> ClassSubset:
    """Keep only ``classes`` (names), relabelled from 0, at most ``per_class`` images each.

    Transfer-learning experiments use it to split one data set into a source task and a
    target task with few labels.

    Example:
        >>> ds = StandInCIFAR10(size=200)
        >>> small = class_subset(ds, ["ring", "disk"], per_class=5)
        >>> len(small), small.classes, sorted(set(small.targets))
        (10, ['ring', 'disk'], [0, 1])
    """
    names = list(dataset.classes)  # type: ignore[attr-defined]
    unknown = [c for c in classes if c not in names]
    if unknown:
        raise ValueError(f"classes {unknown} are not in this data set; it has {names}")
    relabel = {names.index(c): new for new, c in enumerate(classes)}
    targets = torch.as_tensor([int(t) for t in dataset.targets])  # type: ignore[attr-defined]
    order = torch.randperm(len(targets), generator=torch.Generator().manual_seed(seed))
    chosen: list[int] = []
    for old in relabel:
        mine = order[targets[order] == old]
        chosen += mine[:per_class].tolist() if per_class is not None else mine.tolist()
    return ClassSubset(dataset, sorted(chosen), list(classes), relabel)


def _in_notebook() -> bool:
    return "ipykernel" in sys.modules


def default_num_workers() -> int:
    """Worker processes that are safe here: 0 where workers break, else up to 4.

    On Windows and macOS, workers are started by *spawning* a fresh interpreter
    that must re-import the data set; classes defined in a notebook cannot be
    re-imported, so workers crash there ("Can't get attribute ... on <module
    '__main__'>"). We use the main process in that case. Elsewhere, one worker per
    spare core (at most 4) decodes images while the model trains.

    Example:
        >>> default_num_workers() >= 0
        True
    """
    if sys.platform in ("win32", "darwin") and _in_notebook():
        return 0
    cores = os.cpu_count() or 1
    return max(0, min(4, cores - 1))


def make_loader(
    dataset: Dataset,
    batch_size: int = 128,
    shuffle: bool = False,
    num_workers: int | None = None,
    seed: int | None = None,
    drop_last: bool = False,
    pin_memory: bool | None = None,
) -> DataLoader:
    """Make a DataLoader with safe defaults for notebooks and every platform.

    Args:
        shuffle: reshuffle every epoch (training data), or keep order (evaluation).
        num_workers: defaults to :func:`default_num_workers`, and to 0 for a
            ``TensorDataset`` (already decoded, in memory: workers would only add overhead).
        seed: seeds the shuffling, so the batch order is repeatable.
        pin_memory: defaults to True when a CUDA GPU is present: batches go to page-locked
            memory, from which ``x.to("cuda", non_blocking=True)`` copies while the GPU
            works.

    Batches are stacked by :func:`collate_images`, whose error for images of different
    sizes names the transform to add. Under ``torchrun`` each process gets its shard: a
    ``DistributedSampler`` (seeded with ``seed``) when shuffling, else an unpadded
    :class:`cnnlab.distributed.ShardSampler`.

    Example:
        >>> loader = make_loader(StandInCIFAR10(size=64, transform=cifar10_eval_transform()),
        ...                      batch_size=16, shuffle=True, seed=0)
        >>> images, labels = next(iter(loader))
        >>> tuple(images.shape)
        (16, 3, 32, 32)
    """
    if num_workers is None:  # tensors already in memory need no decoding workers
        num_workers = 0 if isinstance(dataset, TensorDataset) else default_num_workers()
    workers = num_workers
    generator = torch.Generator().manual_seed(seed) if seed is not None else None
    sampler = None
    if distributed.is_distributed():  # each process its own shard of the data
        sampler = (DistributedSampler(dataset, shuffle=True, seed=seed or 0, drop_last=drop_last)
                   if shuffle else distributed.ShardSampler(dataset))  # fmt: skip
        shuffle = False
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle,
        sampler=sampler,
        num_workers=workers,
        generator=generator,
        drop_last=drop_last,
        pin_memory=torch.cuda.is_available() if pin_memory is None else pin_memory,
        persistent_workers=workers > 0,
        collate_fn=collate_images,
    )

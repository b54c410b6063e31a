"""Distributed data parallel training with PyTorch's own engine (``torch.distributed``),
launched by ``torchrun``: one process per device, each holding a replica of the model.

Outside ``torchrun`` every function here is a no-op, so ``fit`` and the loaders run the
same code in one process or many.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import nn


def is_distributed() -> bool:
    """True inside an initialised process group of more than one process.

    Example:
        >>> is_distributed()
        False
    """
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    """This process's rank (0 when not distributed).

    Example:
        >>> rank()
        0
    """
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    """How many processes train together (1 when not distributed).

    Example:
        >>> world_size()
        1
    """
    return dist.get_world_size() if is_distributed() else 1


def is_main_process() -> bool:
    """True on rank 0: the process that prints, logs and saves.

    Example:
        >>> is_main_process()
        True
    """
    return rank() == 0


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """Sum ``tensor`` over every process, in place; returns it (unchanged when alone).

    Example:
        >>> all_reduce_sum(torch.tensor([1.0, 2.0]))
        tensor([1., 2.])
    """
    if is_distributed():
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def wrap(model: nn.Module, device: torch.device) -> nn.Module:
    """The model in ``DistributedDataParallel`` when distributed, else the model itself.

    DDP all-reduces (averages) the gradients of every replica during ``backward``, so all
    replicas take the same optimizer step and stay identical.

    Example:
        >>> wrap(nn.Linear(2, 2), torch.device("cpu"))
        Linear(in_features=2, out_features=2, bias=True)
    """
    if not is_distributed() or isinstance(model, nn.parallel.DistributedDataParallel):
        return model
    device_ids = [device.index if device.index is not None else torch.cuda.current_device()] \
        if device.type == "cuda" else None  # fmt: skip
    return nn.parallel.DistributedDataParallel(model, device_ids=device_ids)


def set_epoch(loader: object, epoch: int) -> None:
    """Give the loader's sampler (or the loader) the epoch number, so that every process
    draws the same new shuffle each epoch. Forgetting it repeats epoch 1's order forever.

    Example:
        >>> set_epoch([], 3)  # no sampler: nothing to do
    """
    sampler = getattr(loader, "sampler", None)
    for target in (sampler, loader):
        if hasattr(target, "set_epoch"):
            target.set_epoch(epoch)
            return

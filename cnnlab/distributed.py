"""Distributed data parallel training with PyTorch's own engine (``torch.distributed``),
launched by ``torchrun``: one process per device, each holding a replica of the model.

How a step works under DDP: every process takes its own shard of the batch, runs forward
and backward on it, and during ``backward`` the gradients are averaged across processes
(an *all-reduce*); every replica then takes the same optimizer step, so the replicas stay
identical without ever sending weights.

What cnnlab does for you under ``torchrun`` (outside it, every function here is a no-op,
so the same script runs in one process or many):

- :func:`setup` joins the process group from torchrun's environment (NCCL on CUDA under
  Linux, Gloo on the CPU and on Windows) and returns this process's device (the CPU for
  every process when a machine has fewer GPUs than processes);
- :func:`cnnlab.data.make_loader` shards the data set: a ``DistributedSampler`` for
  training (``fit`` calls its ``set_epoch`` every epoch), an unpadded shard for
  evaluation; :class:`cnnlab.data.TensorLoader` shards its epoch order the same way;
- ``fit`` wraps the model in ``DistributedDataParallel`` (again whenever a callback
  changes which parameters train), sums its metrics over all processes, and shows
  progress, prints, logs and writes checkpoints from rank 0 only;
  ``ModelCheckpoint(resume=True)`` resumes every process from rank 0's file (each with its
  own random state), after checking that every process can see it;
- :func:`cnnlab.data.decode_images` decodes and caches a folder on each machine's local
  rank 0 while the others wait (:func:`local_main_first`).

Example:
    >>> device = setup()          # under torchrun: joins the group; else picks a device
    >>> world_size(), is_main_process()
    (1, True)
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import Dataset, Sampler


def launched_by_torchrun() -> bool:
    """True when torchrun (or another launcher) set ``RANK``, ``WORLD_SIZE`` and
    ``LOCAL_RANK`` for this process.

    Example:
        >>> launched_by_torchrun()
        False
    """
    return all(name in os.environ for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"))


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


def default_backend(device: torch.device) -> str:
    """The process group backend for ``device``: NCCL for CUDA GPUs on Linux, Gloo
    elsewhere (the CPU, and Windows, where NCCL does not exist).

    Example:
        >>> default_backend(torch.device("cpu"))
        'gloo'
    """
    nccl = device.type == "cuda" and sys.platform != "win32" and dist.is_nccl_available()
    return "nccl" if nccl else "gloo"


def local_rank() -> int:
    """This process's rank on its own machine (``LOCAL_RANK``; 0 when not launched).

    Example:
        >>> local_rank()
        0
    """
    return int(os.environ.get("LOCAL_RANK", 0)) if launched_by_torchrun() else 0


def setup(backend: str | None = None) -> torch.device:
    """Join the process group that torchrun prepared, and return this process's device:
    ``cuda:LOCAL_RANK`` when the machine has a GPU for every process, else the CPU, with
    :func:`default_backend` (NCCL on Linux GPUs, Gloo otherwise). More processes than GPUs
    (``--nproc_per_node=2`` on Colab's one GPU) train on the CPU, and rank 0 says so in one
    line. Without torchrun, nothing is joined and :func:`cnnlab.settings.get_device`
    answers.

    Example:
        >>> setup().type in ("cpu", "cuda", "mps")
        True
    """
    from .settings import get_device

    if not launched_by_torchrun():
        return get_device()
    local = local_rank()
    per_machine = int(os.environ.get("LOCAL_WORLD_SIZE", local + 1))
    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if gpus >= per_machine:
        device = torch.device("cuda", local)
        torch.cuda.set_device(device)
    else:
        device = torch.device("cpu")
        if gpus and int(os.environ["RANK"]) == 0:
            print(f"cnnlab: {per_machine} processes per machine but {gpus} GPU(s): all train on "
                  f"the CPU with gloo (pass --nproc_per_node={gpus} to use the GPUs)", flush=True)  # fmt: skip
    if not dist.is_initialized():
        dist.init_process_group(backend or default_backend(device))
    return device


def cleanup(wait: bool = True) -> None:
    """Wait for every process (unless ``wait=False``, after an error: the others may
    never arrive), then leave the process group. Call it at the end of a script.

    Example:
        >>> cleanup()  # not distributed: nothing to do
    """
    if dist.is_available() and dist.is_initialized():
        if wait:
            dist.barrier()
        dist.destroy_process_group()


def barrier() -> None:
    """Wait until every process reaches this line (no-op when alone).

    Example:
        >>> barrier()
    """
    if is_distributed():
        dist.barrier()


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """Sum ``tensor`` over every process, in place; returns it (unchanged when alone).

    Example:
        >>> all_reduce_sum(torch.tensor([1.0, 2.0]))
        tensor([1., 2.])
    """
    if is_distributed():
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def all_gather_object(obj: object) -> list:
    """Every process's ``obj`` (picklable), in rank order: ``[obj]`` when alone.

    Example:
        >>> all_gather_object({"epoch": 3})
        [{'epoch': 3}]
    """
    if not is_distributed():
        return [obj]
    gathered: list = [None] * world_size()
    dist.all_gather_object(gathered, obj)
    return gathered


@contextlib.contextmanager
def local_main_first():
    """Let local rank 0 run the block first (decode and cache a data set, download a
    file), the other processes of its machine after it, when the result is on disk.

    Example:
        >>> with local_main_first():
        ...     pass
    """
    if not is_distributed():
        yield
        return
    if local_rank() != 0:
        dist.barrier()  # wait for this machine's rank 0 to finish the block
    try:
        yield
    finally:
        if local_rank() == 0:
            dist.barrier()  # release the others


@torch.no_grad()
def broadcast_weights(model: nn.Module) -> nn.Module:
    """Copy rank 0's parameters and buffers to every process (no-op when alone). ``fit``
    does it before any callback starts, so that state a callback copies from the model
    (Lookahead's slow weights, EarlyStopping's best) is the same on every process even
    when each process seeded its own initialisation.

    Example:
        >>> broadcast_weights(nn.Linear(2, 2)).out_features
        2
    """
    if is_distributed():
        for tensor in [*model.parameters(), *model.buffers()]:
            dist.broadcast(tensor.data, src=0)
    return model


def wrap(model: nn.Module, device: torch.device) -> nn.Module:
    """The model in ``DistributedDataParallel`` when distributed, else the model itself.

    Example:
        >>> wrap(nn.Linear(2, 2), torch.device("cpu"))
        Linear(in_features=2, out_features=2, bias=True)
    """
    if not is_distributed() or isinstance(model, nn.parallel.DistributedDataParallel):
        return model
    device_ids = [device.index if device.index is not None else torch.cuda.current_device()] \
        if device.type == "cuda" else None  # fmt: skip
    return nn.parallel.DistributedDataParallel(model, device_ids=device_ids)


def sync_batchnorm(model: nn.Module) -> nn.Module:
    """Replace every BatchNorm layer by ``SyncBatchNorm``, which computes the batch
    statistics over all processes' shards together: worth it when each process's batch is
    small (under about 16 images). PyTorch implements it for CUDA only.

    Example:
        >>> sync_batchnorm(nn.Sequential(nn.BatchNorm2d(4)))  # doctest: +SKIP
    """
    if not torch.cuda.is_available():
        raise RuntimeError("SyncBatchNorm needs CUDA GPUs (PyTorch has no CPU version): on the "
                           "CPU, keep ordinary BatchNorm, or use larger batches per process.")  # fmt: skip
    return nn.SyncBatchNorm.convert_sync_batchnorm(model)


def set_epoch(loader: object, epoch: int) -> None:
    """Give the loader (or its sampler) the epoch number, so that every process draws the
    same new shuffle each epoch (``fit`` calls it). Forgetting it repeats one order forever.

    Example:
        >>> set_epoch([], 3)  # no sampler: nothing to do
    """
    for target in (getattr(loader, "sampler", None), loader):
        if hasattr(target, "set_epoch"):
            target.set_epoch(epoch)


class ShardSampler(Sampler[int]):
    """This process's share of a data set for evaluation: indices ``rank, rank + world, ...``,
    in order, without the padding a ``DistributedSampler`` adds, so that metrics summed
    over all processes count every item exactly once.

    Example:
        >>> list(ShardSampler(range(5), process=1, processes=2))
        [1, 3]
    """

    def __init__(self, dataset: Dataset, process: int | None = None,
                 processes: int | None = None) -> None:  # fmt: skip
        self.n = len(dataset)  # type: ignore[arg-type]
        self.rank = rank() if process is None else process
        self.world = world_size() if processes is None else processes

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.rank, self.n, self.world))

    def __len__(self) -> int:
        return len(range(self.rank, self.n, self.world))


def shard(order: torch.Tensor, drop_last: bool) -> torch.Tensor:
    """This process's part of an epoch order: every ``world_size``-th index from ``rank``.
    With ``drop_last`` (training) the order is first cut to a multiple of the world size,
    so that every process takes the same number of steps (DDP needs it).

    Example:
        >>> shard(torch.arange(5), drop_last=True).tolist()  # one process: all of it
        [0, 1, 2, 3, 4]
    """
    world = world_size()
    if world == 1:
        return order
    if drop_last:
        order = order[: len(order) - len(order) % world]
    return order[rank() :: world]


def scaled_lr(lr: float, per_process_batch: int, reference_batch: int | None = None) -> float:
    """The linear scaling rule across processes: ``world_size`` processes with batch ``b``
    each make one step of ``world_size * b`` images, so the rate tuned for batch
    ``reference_batch`` (default ``b``, one process) is multiplied by the growth. Pair
    it with a warm-up (:func:`cnnlab.schedules.warmup_linear_decay`): large rates at the
    first steps are what the warm-up protects.

    Example:
        >>> scaled_lr(0.1, per_process_batch=128)  # one process: unchanged
        0.1
    """
    from .schedules import scale_lr

    return scale_lr(lr, per_process_batch * world_size(), reference_batch or per_process_batch)


__all__ = [
    "ShardSampler",
    "all_gather_object",
    "all_reduce_sum",
    "barrier",
    "broadcast_weights",
    "cleanup",
    "default_backend",
    "is_distributed",
    "is_main_process",
    "launched_by_torchrun",
    "local_main_first",
    "local_rank",
    "rank",
    "scaled_lr",
    "set_epoch",
    "setup",
    "shard",
    "sync_batchnorm",
    "world_size",
]

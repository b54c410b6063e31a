"""The training loop: one epoch of training (:func:`train_one_epoch`), evaluation
(:func:`evaluate`) and test-time augmentation (:func:`tta_logits`). ``fit``, which loops
over epochs and calls the callbacks, is in :mod:`cnnlab.engine.fit`.

The loop reads nothing back from the device inside a step, with one exception that PyTorch
imposes: with float16 (a ``GradScaler``) and an optimizer that is not fused,
``GradScaler.step`` reads one value per step (whether a gradient overflowed) before it
lets the optimizer step. ``fit``'s default optimizer is fused on CUDA, so that read goes
away; build your own Adam, AdamW or SGD with ``fused=True`` on a GPU for the same.
Otherwise the running loss and accuracy are summed on the device and read when the
progress bar refreshes (about twice a second) and at the end of the epoch; labels and
inputs are checked on the host before they are copied to the device (or once per data
set, for a :class:`~cnnlab.data.TensorLoader`).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable

import torch
from torch import nn

from .. import distributed
from ..checks import check_inputs, check_labels
from ..errors import LabelError
from ..freezing import keep_frozen_batchnorm_in_eval
from ..history import EpochResult
from ..progress import progress as progress_bar
from ..settings import autocast_dtype

__all__ = ["evaluate", "train_one_epoch", "tta_logits"]

REFRESH_SECONDS = 0.5  # how often a progress bar reads the running loss from the device


def _autocast(device: torch.device, dtype: torch.dtype | None):
    return torch.autocast(device.type, dtype=dtype, enabled=dtype is not None)


def _inputs(x: torch.Tensor, loader, device: torch.device, memory_format, where: str):
    """Check a host batch (cheap, no GPU wait) and copy it to ``device``."""
    if x.device.type == "cpu" and not getattr(loader, "batches_checked", False):
        x = check_inputs(x, where)
    return x.to(device, non_blocking=True, memory_format=memory_format)


def _labels(y: torch.Tensor, outputs: int, loader, device: torch.device) -> torch.Tensor:
    """Check labels against the model's number of outputs without reading the GPU: once
    per data set for a loader that checked its labels, else on the host before the copy
    (labels already on a GPU, from some other loader, are checked there)."""
    known = (
        getattr(loader, "num_classes", None) if getattr(loader, "batches_checked", False) else None
    )
    if known is not None:
        if known > outputs:
            raise LabelError(
                f"the data has {known} classes but the model has {outputs} outputs: build the "
                f"model with num_classes={known} (labels must be in [0, num_classes))."
            )
        return y.to(device, non_blocking=True)
    return check_labels(y, outputs).to(device, non_blocking=True)


class _Refresh:
    """True about every ``seconds``: when a progress bar may read a value off the GPU."""

    def __init__(self, enabled: bool, seconds: float = REFRESH_SECONDS) -> None:
        self.enabled, self.seconds, self.last = enabled, seconds, time.monotonic()

    def due(self) -> bool:
        if not self.enabled or time.monotonic() - self.last < self.seconds:
            return False
        self.last = time.monotonic()
        return True


def _result(loss_sum: torch.Tensor, correct: torch.Tensor, seen: int, what: str) -> EpochResult:
    """Sum over every process (under torchrun) and read the totals: one host read."""
    totals = torch.stack([loss_sum.double(), correct.double(),
                          torch.tensor(float(seen), dtype=torch.float64, device=loss_sum.device)])  # fmt: skip
    totals = distributed.all_reduce_sum(totals)
    loss, right, count = totals.tolist()
    if count == 0:
        raise ValueError(f"the {what} loader yielded no batches: is the data set empty?")
    return EpochResult(loss / count, right / count, int(count))


def _group_size(step: int, accumulate: int, total: int | None) -> int:
    """How many batches the group of batch ``step`` holds (fewer for a last, short group)."""
    if total is None:
        return accumulate
    start = step - step % accumulate
    return min(accumulate, total - start)


def _no_sync(model: nn.Module, skip: bool):
    """DDP's ``no_sync()`` for a batch whose gradients are only added up (no averaging
    across processes until the group's last batch); nothing otherwise."""
    if skip and hasattr(model, "no_sync"):
        return model.no_sync()
    return contextlib.nullcontext()


def _optimizer_step(model: nn.Module, optimizer, scaler, grad_clip: float | None) -> None:
    """Clip (on unscaled gradients) and step; a float16 scaler skips a step whose
    gradients overflowed."""
    if scaler is not None:
        if grad_clip is not None:
            scaler.unscale_(optimizer)
            nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        scaler.step(optimizer)
        scaler.update()
        return
    if grad_clip is not None:
        nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    optimizer.step()


def train_one_epoch(
    model: nn.Module,
    loader: Iterable,
    loss_fn: nn.Module,
    optimizer: torch.optim.Optimizer,
    device: torch.device,
    *,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
    amp_dtype: torch.dtype | None = None,
    scaler: torch.amp.GradScaler | None = None,
    grad_clip: float | None = None,
    progress: bool = True,
    desc: str = "train",
    frozen_bn_eval: bool = True,
    channels_last: bool = False,
    on_step: Callable[[torch.Tensor], None] | None = None,
    accumulate: int = 1,
) -> EpochResult:
    """Train ``model`` for one pass over ``loader`` and return mean loss and accuracy.

    The five steps of every iteration: ``zero_grad``, forward, loss, backward, step (the
    order of the first three does not matter, as long as ``zero_grad`` comes before
    ``backward``). With ``accumulate=k`` (gradient accumulation), the optimizer steps once every ``k``
    batches, on the gradients of all ``k`` added up, each loss divided by the number of
    batches in its group: the gradient of one batch ``k`` times larger, except that
    BatchNorm still normalises each small batch on its own. A last group with fewer
    batches is divided by its own size. Under DDP, only the last batch of a group
    averages gradients across processes (``no_sync`` for the others).
    ``scheduler``, when given, is stepped after every batch (one-cycle, warm-up).
    ``amp_dtype`` (from :func:`cnnlab.settings.autocast_dtype`) turns on mixed precision;
    float16 needs a ``scaler`` (:func:`cnnlab.settings.grad_scaler`). With
    ``frozen_bn_eval`` (the default), BatchNorm layers whose parameters are all frozen stay
    in eval mode, keeping their running statistics. ``channels_last`` hands batches to the
    model in NHWC memory order. ``on_step(loss)`` runs after every optimizer step with the
    loss of the group's last batch, still on the device; ``scheduler`` is stepped at
    optimizer steps too.

    Example:
        >>> result = train_one_epoch(model, train_loader, nn.CrossEntropyLoss(),
        ...                          optimizer, get_device())  # doctest: +SKIP
        >>> print(result)  # doctest: +SKIP
        loss 1.2345, accuracy 55.12% on 50,000 images
    """
    model.train()
    if frozen_bn_eval:
        keep_frozen_batchnorm_in_eval(model)
    loss_sum = torch.zeros((), device=device)
    correct = torch.zeros((), device=device, dtype=torch.long)
    seen = 0
    bar = progress_bar(loader, desc=desc, leave=False, disable=not progress)
    refresh = _Refresh(progress)
    memory_format = torch.channels_last if channels_last else torch.preserve_format
    total = len(loader) if hasattr(loader, "__len__") else None
    last = True
    for step, (x, y) in enumerate(bar):
        x = _inputs(x, loader, device, memory_format, f"training batch {step}")
        first, group = step % accumulate == 0, _group_size(step, accumulate, total)
        last = (step + 1) % accumulate == 0 or (total is not None and step + 1 == total)
        if first:
            optimizer.zero_grad(set_to_none=True)
        with _no_sync(model, skip=not last):
            with _autocast(device, amp_dtype):
                logits = model(x)
                y = _labels(y, logits.shape[-1], loader, device)
                loss = loss_fn(logits, y)
            scaled = loss / group if group > 1 else loss
            (scaler.scale(scaled) if scaler is not None else scaled).backward()
        if last:
            _optimizer_step(model, optimizer, scaler, grad_clip)
            if scheduler is not None:
                scheduler.step()
        n = y.shape[0]
        seen += n
        loss_sum += loss.detach().float() * n
        correct += (logits.detach().argmax(dim=-1) == y).sum()
        if last and on_step is not None:
            on_step(loss.detach())
        if refresh.due():
            bar.set_postfix(loss=f"{loss_sum.item() / seen:.3f}")
    if seen and not last:  # a loader without len() ended inside a group
        _optimizer_step(model, optimizer, scaler, grad_clip)
        if scheduler is not None:
            scheduler.step()
        if on_step is not None:
            on_step(loss.detach())
    return _result(loss_sum, correct, seen, "training")


def tta_logits(
    model: nn.Module, x: torch.Tensor, flip: bool = False, translate: int = 0
) -> torch.Tensor:
    """Test-time augmentation: the logits of ``x`` averaged with those of its mirror image
    (``flip``), and of copies shifted ``translate`` pixels up-left and down-right
    (reflect-padded), weighted as airbench does: half the plain (or flipped) view, half the
    shifted ones.

    Example:
        >>> net = SimpleCNN().eval()
        >>> tta_logits(net, torch.rand(2, 3, 32, 32), flip=True, translate=1).shape
        torch.Size([2, 10])
    """
    logits = model(x)
    if flip:
        logits = (logits + model(x.flip(-1))) / 2
    if translate:
        h, w = x.shape[-2:]
        padded = nn.functional.pad(x, (translate,) * 4, mode="reflect")
        shifted = (padded[..., :h, :w], padded[..., 2 * translate :, 2 * translate :])
        moved = sum(tta_logits(model, view, flip) for view in shifted) / 2
        logits = (logits + moved) / 2
    return logits


@torch.no_grad()
def evaluate(
    model: nn.Module,
    loader: Iterable,
    loss_fn: nn.Module | None = None,
    device: torch.device | str | None = None,
    *,
    precision: str = "fp32",
    progress: bool = False,
    tta_flip: bool = False,
    tta_translate: int = 0,
    channels_last: bool = False,
) -> EpochResult:
    """Mean loss and accuracy of ``model`` on ``loader``, in eval mode, without gradients.

    ``model.eval()`` matters: it switches dropout off and makes BatchNorm use its
    running statistics instead of the batch's. ``tta_flip`` (test-time augmentation)
    averages the logits of each image and its mirror image: twice the compute, usually
    a few tenths of a point more accuracy for a network trained with random flips;
    ``tta_translate`` adds copies shifted by that many pixels (:func:`tta_logits`).
    ``precision`` as for :func:`fit`. The model's mode is restored afterwards.

    Example:
        >>> result = evaluate(model, test_loader)  # doctest: +SKIP
        >>> print(f"test accuracy {result.accuracy:.1%}")  # doctest: +SKIP
    """
    device = torch.device(device) if device is not None else next(model.parameters()).device
    dtype = autocast_dtype(device, precision)
    loss_fn = loss_fn or nn.CrossEntropyLoss()
    was_training = model.training
    model.eval()
    loss_sum = torch.zeros((), device=device)
    correct = torch.zeros((), device=device, dtype=torch.long)
    seen = 0
    memory_format = torch.channels_last if channels_last else torch.preserve_format
    try:
        bar = progress_bar(loader, desc="eval", leave=False, disable=not progress)
        for step, (x, y) in enumerate(bar):
            x = _inputs(x, loader, device, memory_format, f"evaluation batch {step}")
            with _autocast(device, dtype):
                logits = tta_logits(model, x, tta_flip, tta_translate)
                y = _labels(y, logits.shape[-1], loader, device)
                loss = loss_fn(logits, y)
            seen += y.shape[0]
            loss_sum += loss.float() * y.shape[0]
            correct += (logits.argmax(dim=-1) == y).sum()
    finally:
        model.train(was_training)
    return _result(loss_sum, correct, seen, "evaluation")

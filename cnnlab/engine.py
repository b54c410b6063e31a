"""The training engine: one epoch of training, evaluation, and ``fit`` that loops over epochs.

Everything a step needs is an argument (model, data, loss, optimizer, device), as in
torchvision's reference scripts, and one loop serves CPU and GPU, float32 and mixed
precision. What is not the loop itself (checkpoints, early stopping, logging, unfreezing
schedules) lives in :mod:`cnnlab.callbacks`.

The loop never waits for the GPU inside a step: the running loss and accuracy are summed
on the device and read when the progress bar refreshes (about twice a second) and at the
end of the epoch; labels and inputs are checked on the host before they are copied to the
device (or once per data set, for a :class:`~cnnlab.data.TensorLoader`).
"""

from __future__ import annotations

import contextlib
import math
import time
import warnings
from collections.abc import Callable, Iterable, Sequence

import torch
from torch import nn
from tqdm.auto import tqdm

from . import distributed
from .callbacks import Callback, FitState, check_monitor, sorted_callbacks
from .checks import check_inputs, check_labels
from .errors import ConfigurationError, LabelError
from .freezing import keep_frozen_batchnorm_in_eval
from .history import METRICS, EpochResult, History
from .progress import progress as progress_bar
from .settings import autocast_dtype, get_device, grad_scaler

__all__ = ["EpochResult", "History", "evaluate", "fit", "train_one_epoch", "tta_logits"]

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
) -> EpochResult:
    """Train ``model`` for one pass over ``loader`` and return mean loss and accuracy.

    The five steps of every iteration: forward, loss, ``zero_grad``, backward, step.
    ``scheduler``, when given, is stepped after every batch (one-cycle, warm-up).
    ``amp_dtype`` (from :func:`cnnlab.settings.autocast_dtype`) turns on mixed precision;
    float16 needs a ``scaler`` (:func:`cnnlab.settings.grad_scaler`). With
    ``frozen_bn_eval`` (the default), BatchNorm layers whose parameters are all frozen stay
    in eval mode, keeping their running statistics. ``channels_last`` hands batches to the
    model in NHWC memory order. ``on_step(loss)`` runs after every optimizer step with the
    batch's loss, still on the device.

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
    for step, (x, y) in enumerate(bar):
        x = _inputs(x, loader, device, memory_format, f"training batch {step}")
        with _autocast(device, amp_dtype):
            logits = model(x)
            y = _labels(y, logits.shape[-1], loader, device)
            loss = loss_fn(logits, y)
        optimizer.zero_grad(set_to_none=True)
        if scaler is not None:
            scaler.scale(loss).backward()
            if grad_clip is not None:
                scaler.unscale_(optimizer)
                nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
            scaler.step(optimizer)  # skips the step if a gradient overflowed
            scaler.update()
        else:
            loss.backward()
            if grad_clip is not None:
                nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
            optimizer.step()
        if scheduler is not None:
            scheduler.step()
        n = y.shape[0]
        seen += n
        loss_sum += loss.detach().float() * n
        correct += (logits.detach().argmax(dim=-1) == y).sum()
        if on_step is not None:
            on_step(loss.detach())
        if refresh.due():
            bar.set_postfix(loss=f"{loss_sum.item() / seen:.3f}")
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


_LEGACY = {
    "amp": "precision='auto' (mixed precision where the device has it) or 'fp16'/'bf16'",
    "early_stopping": "callbacks=[EarlyStopping(monitor, patience=...)]",
    "monitor": "callbacks=[EarlyStopping(monitor, ...)] (or scheduler_monitor= for "
    "ReduceLROnPlateau)",
    "keep_best": "callbacks=[EarlyStopping(monitor, restore_best=True)]",
    "checkpoint": "callbacks=[ModelCheckpoint(path)]",
    "resume": "callbacks=[ModelCheckpoint(path, resume=True)]",
    "epoch_start": "callbacks=[LambdaCallback(on_epoch_start=...)] or a Callback",
    "epoch_end": "callbacks=[LambdaCallback(on_epoch_end=...)] or a Callback",
}


def _refuse_legacy(legacy: dict) -> None:
    for name in legacy:
        if name in _LEGACY:
            raise TypeError(f"fit() no longer takes {name}=; use {_LEGACY[name]} "
                            "(see cnnlab.callbacks).")  # fmt: skip
        raise TypeError(f"fit() got an unexpected keyword argument {name!r}")


def _has_no_batches(loader) -> bool:
    return hasattr(loader, "__len__") and len(loader) == 0


def check_fit_options(
    model: nn.Module,
    train_loader,
    val_loader,
    *,
    epochs: int,
    optimizer,
    lr,
    loss_fn,
    label_smoothing,
    scheduler,
    scheduler_interval: str,
    scheduler_monitor: str | None,
    grad_clip,
    tta_flip: bool,
    callbacks: Sequence[Callback],
    tta_translate: int = 0,
) -> list[str]:
    """Check ``fit``'s options against each other before any batch is drawn; returns the
    metrics the run will measure. Each refusal names the fix.

    Example:
        >>> check_fit_options(nn.Linear(2, 2), [], None, epochs=0, optimizer=None, lr=None,
        ...     loss_fn=None, label_smoothing=None, scheduler=None, scheduler_interval="epoch",
        ...     scheduler_monitor=None, grad_clip=None, tta_flip=False, callbacks=[])
        Traceback (most recent call last):
        ...
        cnnlab.errors.ConfigurationError: epochs must be a whole number >= 1, got 0
    """
    metrics = [m for m in METRICS if val_loader is not None or m.startswith("train")]
    if not isinstance(epochs, int) or epochs < 1:
        raise ConfigurationError(f"epochs must be a whole number >= 1, got {epochs!r}")
    if scheduler_interval not in ("epoch", "step"):
        raise ConfigurationError(
            f"scheduler_interval must be 'epoch' or 'step', got {scheduler_interval!r}"
        )
    if optimizer is not None and lr is not None:
        raise ConfigurationError(
            "fit got both an optimizer and lr=: the optimizer's own learning rate is used, so "
            "lr would be ignored. Set the rate when you build the optimizer, and drop lr=."
        )
    if loss_fn is not None and label_smoothing is not None:
        raise ConfigurationError(
            "fit got both loss_fn and label_smoothing=: the smoothing belongs to the loss. Use "
            "loss_fn=nn.CrossEntropyLoss(label_smoothing=...) and drop label_smoothing=."
        )
    if optimizer is not None:
        own = {id(p) for p in model.parameters()}
        held = [p for group in optimizer.param_groups for p in group["params"]]
        if held and not any(id(p) in own for p in held):
            raise ConfigurationError(
                "the optimizer holds none of this model's parameters: it was built for "
                "another model (often a model created again after its optimizer). Build the "
                "optimizer from model.parameters() after the model."
            )
    if scheduler is not None:
        if optimizer is None:
            raise ConfigurationError(
                "fit got a scheduler but no optimizer: pass optimizer= the optimizer the "
                "scheduler was built on (fit's default Adam is made inside fit)."
            )
        if getattr(scheduler, "optimizer", optimizer) is not optimizer:
            raise ConfigurationError(
                "the scheduler was built on another optimizer than the one passed to fit, so "
                "it would change a learning rate nobody uses. Build it on this optimizer."
            )
    plateau = isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau)
    if plateau:
        if scheduler_interval != "epoch":
            raise ConfigurationError("ReduceLROnPlateau is stepped once per epoch with a "
                                     "metric: use scheduler_interval='epoch'.")  # fmt: skip
        monitor = scheduler_monitor or "val_loss"
        check_monitor(monitor, metrics, "ReduceLROnPlateau (scheduler_monitor)", scheduler.mode)
    elif scheduler_monitor is not None:
        raise ConfigurationError("scheduler_monitor= only applies to ReduceLROnPlateau.")
    if _has_no_batches(train_loader):
        raise ConfigurationError("the training loader has no batches: is the data set empty "
                                 "(or smaller than the batch size, with drop_last=True)?")  # fmt: skip
    if val_loader is not None and _has_no_batches(val_loader):
        raise ConfigurationError("the validation loader has no batches: is the data set "
                                 "empty? Pass val_loader=None to train without validation.")  # fmt: skip
    if (tta_flip or tta_translate) and val_loader is None:
        raise ConfigurationError("tta_flip and tta_translate apply to validation: pass "
                                 "val_loader too.")  # fmt: skip
    if grad_clip is not None and not grad_clip > 0:
        raise ConfigurationError(f"grad_clip must be a positive number, got {grad_clip!r}")
    for callback in callbacks:
        callback.validate(metrics)
    return metrics


@contextlib.contextmanager
def _cudnn_benchmark(device: torch.device):
    """Let cuDNN time its convolution algorithms once per input shape and keep the fastest
    (training batches have fixed shapes); restored afterwards."""
    if device.type != "cuda":
        yield
        return
    before = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = True
    try:
        yield
    finally:
        torch.backends.cudnn.benchmark = before


def fit(
    model: nn.Module,
    train_loader: Iterable,
    val_loader: Iterable | None = None,
    *,
    epochs: int = 10,
    optimizer: torch.optim.Optimizer | None = None,
    lr: float | None = None,
    loss_fn: nn.Module | None = None,
    label_smoothing: float | None = None,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
    scheduler_interval: str = "epoch",
    scheduler_monitor: str | None = None,
    device: torch.device | str | None = None,
    precision: str = "fp32",
    grad_clip: float | None = None,
    callbacks: Sequence[Callback] = (),
    channels_last: bool = False,
    compile: bool = False,
    tta_flip: bool = False,
    tta_translate: int = 0,
    frozen_bn_eval: bool = True,
    progress: bool = True,
    **legacy,
) -> History:
    """Train ``model`` for ``epochs`` epochs, evaluating after each, and return the History.

    Every option and every callback's ``monitor`` is checked against the others before the
    first batch is drawn (:func:`check_fit_options`); a conflict stops ``fit`` with a
    message that names the fix.

    Args:
        optimizer: defaults to Adam over all parameters at ``lr`` (1e-3 unless given;
            frozen ones have no gradient and are skipped until something unfreezes them).
            Passing both ``optimizer`` and ``lr`` is refused.
        loss_fn: defaults to ``nn.CrossEntropyLoss(label_smoothing=label_smoothing)``.
            Passing both ``loss_fn`` and ``label_smoothing`` is refused.
        label_smoothing: aim the default loss at ``1 - e + e / K`` for the true class of
            ``K`` instead of 1 (0.82 for ``e = 0.2`` and ten classes).
        scheduler: built on ``optimizer``; stepped once per epoch
            (``scheduler_interval="epoch"``) or once per batch (``"step"``, for one-cycle
            and warm-up schedules). ``ReduceLROnPlateau`` is stepped with
            ``scheduler_monitor`` (default ``"val_loss"``), and its ``mode`` must match it.
        device: defaults to :func:`cnnlab.settings.get_device`; the model is moved there.
        precision: ``"fp32"`` (default), ``"auto"``, ``"bf16"`` or ``"fp16"``: see
            :func:`cnnlab.settings.autocast_dtype`. float16 adds a gradient scaler, whose
            state :class:`~cnnlab.callbacks.ModelCheckpoint` saves.
        grad_clip: clip the gradient norm to this value.
        callbacks: :mod:`cnnlab.callbacks` objects, called in the documented order:
            ``ModelCheckpoint`` (atomic saves, exact resume), ``EarlyStopping``,
            ``TensorBoard``, ``GradualUnfreezing``, ``ProgressiveResizing``, your own.
        channels_last: convert the model and every batch to NHWC memory order (faster
            convolutions on GPUs' tensor cores, and on many CPUs).
        compile: ``model.compile()`` first (``torch.compile``: fuses operations; pays on
            GPUs, often not on small CPU runs; the model stays compiled afterwards).
        tta_flip: validate on each image and its mirror image, averaged (needs val_loader).
        tta_translate: also on copies shifted by this many pixels (see :func:`tta_logits`).
        frozen_bn_eval: keep fully frozen BatchNorm layers in eval mode while training.
        progress: show ``tqdm`` progress bars.

    Example:
        >>> from cnnlab.callbacks import EarlyStopping, ModelCheckpoint
        >>> history = fit(SimpleCNN(), train_loader, val_loader, epochs=20, precision="auto",
        ...               callbacks=[EarlyStopping("val_acc", patience=3),
        ...                          ModelCheckpoint("runs/last.pt", resume=True)])  # doctest: +SKIP
        >>> print(history)  # doctest: +SKIP
    """
    _refuse_legacy(legacy)
    device = torch.device(device) if device is not None else get_device()
    dtype = autocast_dtype(device, precision)  # refuses unknown or unsupported precisions
    callbacks = sorted_callbacks(callbacks)
    check_fit_options(model, train_loader, val_loader, epochs=epochs, optimizer=optimizer, lr=lr,
                      loss_fn=loss_fn, label_smoothing=label_smoothing, scheduler=scheduler,
                      scheduler_interval=scheduler_interval, scheduler_monitor=scheduler_monitor,
                      grad_clip=grad_clip, tta_flip=tta_flip, callbacks=callbacks,
                      tta_translate=tta_translate)  # fmt: skip

    model.to(device)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    if compile:
        model.compile()
    loss_fn = loss_fn or nn.CrossEntropyLoss(label_smoothing=label_smoothing or 0.0)
    optimizer = optimizer or torch.optim.Adam(model.parameters(), lr=1e-3 if lr is None else lr)
    trained = distributed.wrap(model, device)  # DistributedDataParallel under torchrun
    main = distributed.is_main_process()
    state = FitState(model=model, optimizer=optimizer, loss_fn=loss_fn, device=device,
                     train_loader=train_loader, val_loader=val_loader, epochs=epochs,
                     scheduler=scheduler, scaler=grad_scaler(device, dtype),
                     is_main_process=main, callbacks=callbacks)  # fmt: skip
    plateau = isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau)
    per_step = scheduler if scheduler_interval == "step" and not plateau else None
    show = progress and main

    def on_step(loss: torch.Tensor) -> None:
        state.step += 1
        state.batch_loss = loss
        for callback in callbacks:
            callback.on_step_end(state)

    with _cudnn_benchmark(device):
        for callback in callbacks:
            callback.on_fit_start(state)
        bar = tqdm(range(state.epoch + 1, epochs + 1), desc="epochs", disable=not show,
                   initial=state.epoch, total=epochs)  # fmt: skip
        for epoch in bar:
            state.epoch = epoch
            distributed.set_epoch(train_loader, epoch)
            for callback in callbacks:
                callback.on_epoch_start(state)
            start, lr_now = time.perf_counter(), optimizer.param_groups[0]["lr"]
            train = train_one_epoch(
                trained, train_loader, loss_fn, optimizer, device,
                scheduler=per_step, amp_dtype=dtype, scaler=state.scaler,
                grad_clip=grad_clip, progress=show, desc=f"epoch {epoch}",
                frozen_bn_eval=frozen_bn_eval, channels_last=channels_last, on_step=on_step,
            )  # fmt: skip
            val = None
            if val_loader is not None:
                val = evaluate(model, val_loader, loss_fn, device, precision=precision,
                               tta_flip=tta_flip, tta_translate=tta_translate,
                               channels_last=channels_last)  # fmt: skip
            state.history.append(
                epoch=epoch, train_loss=train.loss, train_acc=train.accuracy,
                val_loss=val.loss if val else None, val_acc=val.accuracy if val else None,
                lr=lr_now, seconds=time.perf_counter() - start,
            )  # fmt: skip
            if not math.isfinite(train.loss):
                warnings.warn(f"the training loss is {train.loss} in epoch {epoch}: training "
                              "diverged. Lower the learning rate, or clip gradients "
                              "(grad_clip=1.0).", stacklevel=2)  # fmt: skip
            if plateau:
                scheduler.step(getattr(state.history, scheduler_monitor or "val_loss")[-1])
            elif scheduler is not None and scheduler_interval == "epoch":
                scheduler.step()
            for callback in callbacks:
                callback.on_epoch_end(state)
            bar.set_postfix(
                loss=f"{train.loss:.3f}", acc=f"{train.accuracy:.1%}",
                **({"val_acc": f"{val.accuracy:.1%}"} if val else {}),
            )  # fmt: skip
            if state.stop_training:
                break
        for callback in callbacks:
            callback.on_fit_end(state)
    return state.history

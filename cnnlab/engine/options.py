"""``fit``'s options checked against each other before the first batch is drawn, and the
arguments of older versions refused with their replacement."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ..callbacks import Callback, check_monitor
from ..errors import ConfigurationError
from ..history import METRICS

__all__ = ["check_fit_options", "refuse_legacy"]


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


def refuse_legacy(legacy: dict) -> None:
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
    accumulate: int = 1,
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
    if isinstance(accumulate, bool) or not isinstance(accumulate, int) or accumulate < 1:
        raise ConfigurationError(f"accumulate must be a whole number >= 1 (batches per "
                                 f"optimizer step), got {accumulate!r}")  # fmt: skip
    if grad_clip is not None and not grad_clip > 0:
        raise ConfigurationError(f"grad_clip must be a positive number, got {grad_clip!r}")
    for callback in callbacks:
        callback.validate(metrics)
    return metrics

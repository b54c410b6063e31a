"""The callback protocol: :class:`Callback`, the :class:`FitState` that ``fit`` shares with
callbacks, and :class:`LambdaCallback`. The event order is documented in
:mod:`cnnlab.callbacks`."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from ..errors import ConfigurationError
from ..history import History


@dataclass
class FitState:
    """What ``fit`` shares with callbacks (read it; change ``stop_training`` to stop)."""

    model: nn.Module  # yours, unwrapped (under torchrun fit trains a DDP wrapper around it)
    optimizer: torch.optim.Optimizer
    loss_fn: nn.Module
    device: torch.device
    train_loader: Any
    val_loader: Any
    epochs: int
    scheduler: Any = None
    scaler: torch.amp.GradScaler | None = None
    history: History = field(default_factory=History)
    epoch: int = 0  # the current (or last finished) epoch, 1-based; 0 before the first
    step: int = 0  # optimizer steps taken since the run began (resumes continue counting)
    batch_loss: torch.Tensor | None = None  # the last batch's loss, on the training device
    stop_training: bool = False
    is_main_process: bool = True  # False on ranks other than 0 under torchrun
    callbacks: list[Callback] = field(default_factory=list)
    nothing_to_train: bool = False  # set by a resume that finds the run already finished


class Callback:
    """Base class: override the events you need (each does nothing by default).

    A callback with a ``monitor`` attribute (``"val_loss"``, ``"val_acc"``,
    ``"train_loss"``, ``"train_acc"``) has it checked against what ``fit`` will measure
    before training starts. ``state_dict`` / ``load_state_dict`` carry what must survive
    an interruption into :class:`~cnnlab.callbacks.ModelCheckpoint`'s file;
    ``load_state_dict`` receives tensors on the CPU, and a callback that keeps tensors on
    the training device moves them there in ``on_fit_start`` (``state.device``).
    """

    order: int = 0
    monitor: str | None = None
    mode: str = "auto"

    def validate(self, metrics: Sequence[str]) -> None:
        """Raise :class:`~cnnlab.errors.ConfigurationError` if this callback cannot work
        with a run that measures ``metrics``."""
        if self.monitor is not None:
            check_monitor(self.monitor, metrics, type(self).__name__, self.mode)

    def on_resume(self, state: FitState) -> None: ...
    def on_fit_start(self, state: FitState) -> None: ...
    def on_epoch_start(self, state: FitState) -> None: ...
    def on_step_end(self, state: FitState) -> None: ...
    def on_epoch_end(self, state: FitState) -> None: ...
    def on_fit_end(self, state: FitState) -> None: ...

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


def check_monitor(monitor: str, metrics: Sequence[str], who: str, mode: str = "auto") -> None:
    """Refuse a monitor that the run will not measure, or a mode that reads it backwards.

    Example:
        >>> check_monitor("val_acc", ["train_loss", "train_acc"], "EarlyStopping")
        Traceback (most recent call last):
        ...
        cnnlab.errors.ConfigurationError: EarlyStopping monitors 'val_acc', which this run ...
    """
    if monitor not in metrics:
        hint = ""
        if monitor.startswith("val_") and monitor in ("val_loss", "val_acc"):
            hint = " (validation metrics need fit(..., val_loader=...))"
        raise ConfigurationError(
            f"{who} monitors {monitor!r}, which this run does not measure{hint}. "
            f"Valid monitors: {', '.join(metrics)}."
        )
    if mode not in ("auto", "min", "max"):
        raise ConfigurationError(f"{who}: mode must be 'auto', 'min' or 'max', got {mode!r}")
    natural = "max" if monitor.endswith("acc") else "min"
    if mode != "auto" and mode != natural:
        raise ConfigurationError(
            f"{who} has mode={mode!r} for {monitor!r}, which improves when it goes "
            f"{'up' if natural == 'max' else 'down'}: use mode={natural!r} or mode='auto'."
        )


class LambdaCallback(Callback):
    """A callback from plain functions, each taking the :class:`FitState`.

    Example:
        >>> show = LambdaCallback(on_epoch_end=lambda s: print(s.epoch, s.history.train_loss[-1]))
    """

    def __init__(self, **events: Callable[[FitState], None]) -> None:
        names = {
            "on_resume",
            "on_fit_start",
            "on_epoch_start",
            "on_step_end",
            "on_epoch_end",
            "on_fit_end",
        }
        unknown = set(events) - names
        if unknown:
            raise ConfigurationError(f"unknown events {sorted(unknown)}; known: {sorted(names)}")
        for name, function in events.items():
            setattr(self, name, function)


def sorted_callbacks(callbacks: Sequence[Callback]) -> list[Callback]:
    """Callbacks in the order ``fit`` calls them: by ``order``, then as listed."""
    for callback in callbacks:
        if not isinstance(callback, Callback):
            raise ConfigurationError(
                f"callbacks must be cnnlab.callbacks.Callback objects, got {callback!r}; wrap a "
                "function as LambdaCallback(on_epoch_end=f)."
            )
    return sorted(callbacks, key=lambda c: c.order)


__all__ = ["Callback", "FitState", "LambdaCallback", "check_monitor", "sorted_callbacks"]

"""Callbacks: small objects that ``fit`` calls at fixed moments of training.

Keras (``model.fit(callbacks=[...])``) and fastai taught a generation of learners this
shape: the loop stays short, and checkpointing, early stopping, logging and unfreezing
schedules hook onto it. ``fit`` calls every callback's methods in this order::

    validate(metrics)          before anything runs: checks monitors and options
    on_fit_start(state)        once, after the model is on its device
        on_epoch_start(state)      before each epoch's first batch
            on_step_end(state)         after every optimizer step
        on_epoch_end(state)        after validation; state.history has the epoch's row
        (training stops here when a callback set state.stop_training)
    on_fit_end(state)          once, when training ends normally or stops early

Callbacks run in the order of their ``order`` attribute (0 by default), then in list
order. :class:`ModelCheckpoint` has order 100: it runs last, so that the checkpoint it
writes holds the other callbacks' state as of the end of the epoch.

``state`` is a :class:`FitState`: the model, optimizer, scheduler, loaders, the epoch and
step counters, the History, and ``stop_training``. Everything a callback reads from it is
on the host, except ``state.batch_loss``, a tensor on the training device: reading it
(``.item()``) waits for the GPU, so do that every few hundred steps at most.

Example:
    >>> class PrintEpoch(Callback):
    ...     def on_epoch_end(self, state):
    ...         print(f"epoch {state.epoch}: val_acc {state.history.val_acc[-1]:.1%}")
    >>> fit(model, train_loader, val_loader, epochs=3,
    ...     callbacks=[PrintEpoch(), EarlyStopping("val_acc", patience=2)])  # doctest: +SKIP
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .errors import ConfigurationError
from .history import History, is_better


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


class Callback:
    """Base class: override the events you need (each does nothing by default).

    A callback with a ``monitor`` attribute (``"val_loss"``, ``"val_acc"``,
    ``"train_loss"``, ``"train_acc"``) has it checked against what ``fit`` will measure
    before training starts. ``state_dict`` / ``load_state_dict`` carry what must survive
    an interruption into :class:`ModelCheckpoint`'s file.
    """

    order: int = 0
    monitor: str | None = None
    mode: str = "auto"

    def validate(self, metrics: Sequence[str]) -> None:
        """Raise :class:`~cnnlab.errors.ConfigurationError` if this callback cannot work
        with a run that measures ``metrics``."""
        if self.monitor is not None:
            check_monitor(self.monitor, metrics, type(self).__name__, self.mode)

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
        names = {"on_fit_start", "on_epoch_start", "on_step_end", "on_epoch_end", "on_fit_end"}
        unknown = set(events) - names
        if unknown:
            raise ConfigurationError(f"unknown events {sorted(unknown)}; known: {sorted(names)}")
        for name, function in events.items():
            setattr(self, name, function)


class EarlyStopping(Callback):
    """Stop when ``monitor`` has not improved for ``patience`` epochs (Keras' name).

    Args:
        monitor: ``"val_loss"`` (default), ``"val_acc"``, ``"train_loss"``, ``"train_acc"``.
        patience: epochs without improvement before stopping; ``None`` never stops (use
            it with ``restore_best=True`` to only keep the best weights).
        min_delta: an improvement smaller than this does not count.
        restore_best: put the best epoch's weights back into the model at the end.

    Example:
        >>> stopper = EarlyStopping("val_acc", patience=3, restore_best=True)
        >>> history = fit(model, train_loader, val_loader, epochs=50,
        ...               callbacks=[stopper])  # doctest: +SKIP
        >>> stopper.best_epoch  # doctest: +SKIP
        12
    """

    def __init__(self, monitor: str = "val_loss", patience: int | None = 3,
                 min_delta: float = 0.0, restore_best: bool = False, mode: str = "auto") -> None:  # fmt: skip
        if patience is not None and patience < 1:
            raise ConfigurationError(f"patience must be at least 1 (or None), got {patience}")
        self.monitor, self.patience, self.min_delta = monitor, patience, min_delta
        self.restore_best, self.mode = restore_best, mode
        self.best: float | None = None
        self.best_epoch: int | None = None
        self.stale = 0
        self.best_weights: dict[str, torch.Tensor] | None = None
        self.stopped_epoch: int | None = None

    def on_epoch_end(self, state: FitState) -> None:
        value = getattr(state.history, self.monitor)[-1]
        if is_better(self.monitor, value, self.best, self.min_delta):
            self.best, self.best_epoch, self.stale = value, state.epoch, 0
            if self.restore_best:  # a CPU copy: GPU memory stays free for training
                self.best_weights = {k: v.detach().to("cpu", copy=True)
                                     for k, v in state.model.state_dict().items()}  # fmt: skip
        else:
            self.stale += 1
        if self.patience is not None and self.stale >= self.patience:
            state.stop_training = True
            self.stopped_epoch = state.epoch
            if state.is_main_process:
                print(f"early stopping after epoch {state.epoch}: no better {self.monitor} "
                      f"for {self.stale} epochs (best {self.best:.4g} at epoch {self.best_epoch})")  # fmt: skip

    def on_fit_end(self, state: FitState) -> None:
        if self.restore_best and self.best_weights is not None:
            state.model.load_state_dict(self.best_weights)

    def state_dict(self) -> dict:
        return {"best": self.best, "best_epoch": self.best_epoch, "stale": self.stale,
                "best_weights": self.best_weights}  # fmt: skip

    def load_state_dict(self, state: dict) -> None:
        self.best, self.best_epoch = state["best"], state["best_epoch"]
        self.stale, self.best_weights = state["stale"], state["best_weights"]


class ModelCheckpoint(Callback):
    """Save a full training checkpoint after every epoch, atomically, and resume from it.

    The file holds what an exact resume needs: weights, optimizer, scheduler, gradient
    scaler, History, every random generator (the loader's shuffling one included) and the
    other callbacks' state. It is written to a temporary file and renamed, so a crash
    during a save leaves the previous checkpoint intact.

    Args:
        path: the checkpoint file.
        resume: when ``path`` exists, continue from it: ``fit`` starts at the epoch after
            the saved one, and ends exactly as an uninterrupted run would (on the CPU,
            with ``num_workers=0``: worker processes' random state cannot be saved).
        overwrite: when ``path`` exists and ``resume`` is False, start again and replace
            it. Without either, an existing checkpoint is never overwritten: ``fit`` stops
            before the first batch and says what to pass.
        monitor: also keep the weights of the best epoch by this metric in
            ``best_path`` (default: ``<path stem>.best.pt``), loadable with
            :func:`cnnlab.checkpoints.load_weights`.

    Example:
        >>> fit(model, train_loader, val_loader, epochs=20,
        ...     callbacks=[ModelCheckpoint("runs/last.pt", resume=True)])  # doctest: +SKIP
    """

    order = 100  # after the others, so that their end-of-epoch state is saved

    def __init__(self, path: str | Path, *, resume: bool = False, overwrite: bool = False,
                 monitor: str | None = None, best_path: str | Path | None = None) -> None:  # fmt: skip
        self.path = Path(path)
        self.resume, self.overwrite, self.monitor = resume, overwrite, monitor
        self.best_path = Path(best_path) if best_path else self.path.with_suffix(".best.pt")
        self.best: float | None = None
        self.resumed_from: int | None = None

    def validate(self, metrics: Sequence[str]) -> None:
        super().validate(metrics)
        if self.path.exists() and not (self.resume or self.overwrite):
            raise ConfigurationError(
                f"{self.path} already holds a checkpoint, which this run would overwrite. "
                "Pass ModelCheckpoint(..., resume=True) to continue that run, or "
                "overwrite=True to start again and replace it (or choose another path)."
            )

    def on_fit_start(self, state: FitState) -> None:
        from .checkpoints import load_checkpoint

        if not (self.resume and self.path.exists()):
            return
        saved = load_checkpoint(self.path, state.model, state.optimizer, state.scheduler,
                                restore_rng=True, scaler=state.scaler,
                                loader_generator=getattr(state.train_loader, "generator", None))  # fmt: skip
        state.epoch = self.resumed_from = saved["epoch"]
        state.step = saved["extra"].get("step", 0)
        state.history = History(**saved["history"])
        _load_callback_states(state.callbacks, saved["extra"].get("callbacks", {}))
        workers = getattr(state.train_loader, "num_workers", 0)
        if workers:
            warnings.warn(
                f"resuming with num_workers={workers}: the worker processes' random state "
                "(random augmentation, shuffling seeds) is not in the checkpoint, so the "
                "resumed epochs differ slightly from an uninterrupted run. Build the loader "
                "with num_workers=0 when you need an exact repeat.",
                stacklevel=2,
            )
        if state.is_main_process:
            print(f"resumed from {self.path} after epoch {saved['epoch']} of {state.epochs}")

    def on_epoch_end(self, state: FitState) -> None:
        from .checkpoints import atomic_save, save_checkpoint

        if self.monitor is not None:
            value = getattr(state.history, self.monitor)[-1]
            if is_better(self.monitor, value, self.best):
                self.best = value
                if state.is_main_process:
                    atomic_save(_unwrapped(state.model).state_dict(), self.best_path)
        if not state.is_main_process:
            return
        states = {_key(i, cb): cb.state_dict() for i, cb in enumerate(state.callbacks)}
        save_checkpoint(self.path, _unwrapped(state.model), state.optimizer, state.scheduler,
                        state.epoch, state.history, scaler=state.scaler,
                        extra={"step": state.step, "callbacks": states},
                        loader_generator=getattr(state.train_loader, "generator", None))  # fmt: skip

    def state_dict(self) -> dict:
        return {"best": self.best}

    def load_state_dict(self, state: dict) -> None:
        self.best = state["best"]


def _unwrapped(model: nn.Module) -> nn.Module:
    """The module inside a DistributedDataParallel (or compiled) wrapper."""
    return getattr(model, "module", model)


def _key(index: int, callback: Callback) -> str:
    return f"{index}:{type(callback).__name__}"


def _load_callback_states(callbacks: list[Callback], states: dict) -> None:
    for i, callback in enumerate(callbacks):
        key = _key(i, callback)
        if key in states:
            callback.load_state_dict(states[key])
        elif callback.state_dict():
            warnings.warn(f"the checkpoint holds no state for callback {key}: it starts afresh "
                          "(resume with the same callbacks, in the same order).", stacklevel=3)  # fmt: skip


class GradualUnfreezing(Callback):
    """Unfreeze one more layer group (from the head backwards) every ``every`` epochs.

    At epoch 1 only the last ``start`` groups (default: the head) train; at epoch
    ``1 + every`` one more group, and so on until everything trains. Use it with an
    optimizer that holds all parameters (e.g.
    :func:`cnnlab.freezing.discriminative_param_groups`): frozen ones have no gradient
    and are skipped until their turn. Layer groups come from
    :func:`cnnlab.freezing.layer_groups`.

    Example:
        >>> from cnnlab.models import SmallResNet
        >>> model = SmallResNet(width=8); schedule = GradualUnfreezing(model, every=2)
        >>> schedule.apply(1); schedule.trainable_groups()
        ['head']
        >>> schedule.apply(3); schedule.trainable_groups()
        ['layer3', 'head']
    """

    def __init__(self, model: nn.Module, every: int = 1, start: int = 1) -> None:
        from .freezing import layer_groups

        if every < 1 or start < 1:
            raise ConfigurationError("every and start must be at least 1")
        self.model, self.every, self.start = model, every, start
        self.names = list(layer_groups(model))

    def groups_at(self, epoch: int) -> int:
        """How many groups (counted from the head) train in ``epoch`` (1-based)."""
        return min(len(self.names), self.start + (epoch - 1) // self.every)

    def apply(self, epoch: int) -> None:
        """Freeze and unfreeze the groups for ``epoch``."""
        from .freezing import freeze_to

        freeze_to(self.model, len(self.names) - self.groups_at(epoch))

    def on_fit_start(self, state: FitState) -> None:
        self.apply(state.epoch + 1)  # also right after a resume

    def on_epoch_start(self, state: FitState) -> None:
        self.apply(state.epoch)

    def trainable_groups(self) -> list[str]:
        from .freezing import _params, layer_groups

        groups = layer_groups(self.model)
        return [n for n in self.names if any(p.requires_grad for p in _params(groups[n]))]


class ProgressiveResizing(Callback):
    """Train the first ``epochs`` epochs on ``size``-pixel images, the rest at full size.

    Works with loaders that have a ``resize`` attribute (:class:`cnnlab.data.TensorLoader`).
    Small images cost less per epoch; the last epochs at full size recover the detail.

    Example:
        >>> resize = ProgressiveResizing(train_loader, size=24, epochs=3)  # doctest: +SKIP
    """

    def __init__(self, loader: Any, size: int, epochs: int) -> None:
        if not hasattr(loader, "resize"):
            raise ConfigurationError(
                f"{type(loader).__name__} has no 'resize' attribute: progressive resizing "
                "needs a cnnlab.data.TensorLoader."
            )
        self.loader, self.size, self.epochs = loader, size, epochs

    def on_epoch_start(self, state: FitState) -> None:
        self.loader.resize = self.size if state.epoch <= self.epochs else None

    def on_fit_end(self, state: FitState) -> None:
        self.loader.resize = None


class Lookahead(Callback):
    """Lookahead (Zhang et al., 2019), as airbench schedules it: every ``every`` optimizer
    steps, a slow copy of the weights moves towards the trained ones,
    ``slow += (1 - decay) * (fast - slow)``, and training continues from the slow copy.
    ``decay`` grows with training progress ``p`` (0 to 1) as ``base * p ** power``: free
    steps early, heavy averaging late. At the end the model keeps the slow weights. All
    floating-point weights and buffers (BatchNorm statistics too) take part; nothing is
    read back from the device.

    Example:
        >>> fit(model, train_loader, epochs=5, callbacks=[Lookahead()])  # doctest: +SKIP
    """

    def __init__(self, every: int = 5, base: float = 0.95**5, power: float = 3.0) -> None:
        self.every, self.base, self.power = every, base, power
        self.slow: dict[str, torch.Tensor] | None = None
        self.total = 1

    def _floats(self, model: nn.Module) -> dict[str, torch.Tensor]:
        return {k: v for k, v in model.state_dict().items() if v.is_floating_point()}

    def on_fit_start(self, state: FitState) -> None:
        steps = len(state.train_loader) if hasattr(state.train_loader, "__len__") else 1
        self.total = max(1, state.epochs * steps)
        if self.slow is None:  # (a resume has loaded them already)
            self.slow = {k: v.detach().clone() for k, v in self._floats(state.model).items()}

    @torch.no_grad()
    def _update(self, state: FitState, decay: float) -> None:
        for name, fast in self._floats(state.model).items():
            slow = self.slow[name]
            slow.lerp_(fast, 1 - decay)
            fast.copy_(slow)

    def on_step_end(self, state: FitState) -> None:
        if state.step % self.every == 0:
            self._update(state, self.base * min(1.0, state.step / self.total) ** self.power)

    def on_fit_end(self, state: FitState) -> None:
        if self.slow is not None:
            self._update(state, 1.0)  # the model ends with the slow weights

    def state_dict(self) -> dict:
        return {"slow": self.slow}

    def load_state_dict(self, state: dict) -> None:
        self.slow = state["slow"]


class TensorBoard(Callback):
    """Write what ``fit`` does to a TensorBoard run folder (Keras' name).

    Logged: the training loss every ``log_every_n_steps`` optimizer steps; after every
    epoch, the History's losses, accuracies, learning rate and seconds; a histogram of
    every weight (``histograms=True``); at the start, a grid of ``sample_batch``'s
    images and the model graph. Only the main process writes, under torchrun.

    Open the logs in JupyterLab or Colab with ``%load_ext tensorboard`` then
    ``%tensorboard --logdir runs``; in a terminal with ``tensorboard --logdir runs``.

    Example:
        >>> board = TensorBoard("runs/simplecnn", sample_batch=next(iter(train_loader)))  # doctest: +SKIP
        >>> fit(model, train_loader, val_loader, epochs=5, callbacks=[board])  # doctest: +SKIP
    """

    def __init__(self, log_dir: str | Path, sample_batch: tuple | None = None, *,
                 mean: Sequence[float] | None = None, std: Sequence[float] | None = None,
                 histograms: bool = True, log_every_n_steps: int = 50) -> None:  # fmt: skip
        from .data.transforms import CIFAR10_MEAN, CIFAR10_STD

        self.log_dir = Path(log_dir)
        self.sample_batch, self.histograms = sample_batch, histograms
        self.mean, self.std = mean or CIFAR10_MEAN, std or CIFAR10_STD
        self.log_every_n_steps = log_every_n_steps
        self.writer = None

    def on_fit_start(self, state: FitState) -> None:
        if not state.is_main_process:
            return
        from torch.utils.tensorboard import SummaryWriter

        from .data.transforms import denormalize

        self.writer = SummaryWriter(str(self.log_dir))
        if self.sample_batch is not None and state.epoch == 0:
            images = self.sample_batch[0][:32].detach().cpu().float()
            self.writer.add_images("samples", denormalize(images, self.mean, self.std), 0)
            self._add_graph(_unwrapped(state.model), images[:1], state.device)

    def _add_graph(self, model: nn.Module, example: torch.Tensor, device: torch.device) -> None:
        was_training = model.training
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # tracer warnings about Python-side checks
                model.eval()
                self.writer.add_graph(model, example.to(device))
        except Exception as error:  # a graph is a nice-to-have: say so and go on
            warnings.warn(f"TensorBoard: the model graph could not be traced ({error})",
                          stacklevel=3)  # fmt: skip
        finally:
            model.train(was_training)

    def on_step_end(self, state: FitState) -> None:
        if self.writer is not None and state.step % self.log_every_n_steps == 0:
            self.writer.add_scalar("loss/train_step", state.batch_loss.item(), state.step)

    def on_epoch_end(self, state: FitState) -> None:
        if self.writer is None:
            return
        h, epoch = state.history, state.epoch
        for tag, values in [("loss/train", h.train_loss), ("loss/val", h.val_loss),
                            ("accuracy/train", h.train_acc), ("accuracy/val", h.val_acc),
                            ("learning_rate", h.lr), ("seconds_per_epoch", h.seconds)]:  # fmt: skip
            if values and values[-1] is not None:
                self.writer.add_scalar(tag, values[-1], epoch)
        if self.histograms:
            for name, p in _unwrapped(state.model).named_parameters():
                self.writer.add_histogram(f"weights/{name}", p.detach().float().cpu(), epoch)
        self.writer.flush()

    def on_fit_end(self, state: FitState) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


def sorted_callbacks(callbacks: Sequence[Callback]) -> list[Callback]:
    """Callbacks in the order ``fit`` calls them: by ``order``, then as listed."""
    for callback in callbacks:
        if not isinstance(callback, Callback):
            raise ConfigurationError(
                f"callbacks must be cnnlab.callbacks.Callback objects, got {callback!r}; wrap a "
                "function as LambdaCallback(on_epoch_end=f)."
            )
    return sorted(callbacks, key=lambda c: c.order)


__all__ = [
    "Callback",
    "EarlyStopping",
    "FitState",
    "GradualUnfreezing",
    "LambdaCallback",
    "Lookahead",
    "ModelCheckpoint",
    "ProgressiveResizing",
    "TensorBoard",
    "check_monitor",
    "sorted_callbacks",
]

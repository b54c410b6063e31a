"""Callbacks that shape training: :class:`EarlyStopping`, :class:`GradualUnfreezing`,
:class:`ProgressiveResizing` and :class:`Lookahead` weight averaging."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..errors import ConfigurationError
from ..history import is_better
from .base import Callback, FitState


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
        from ..freezing import layer_groups

        if every < 1 or start < 1:
            raise ConfigurationError("every and start must be at least 1")
        self.model, self.every, self.start = model, every, start
        self.names = list(layer_groups(model))

    def groups_at(self, epoch: int) -> int:
        """How many groups (counted from the head) train in ``epoch`` (1-based)."""
        return min(len(self.names), self.start + (epoch - 1) // self.every)

    def apply(self, epoch: int) -> None:
        """Freeze and unfreeze the groups for ``epoch``."""
        from ..freezing import freeze_to

        freeze_to(self.model, len(self.names) - self.groups_at(epoch))

    def on_fit_start(self, state: FitState) -> None:
        self.apply(state.epoch + 1)  # also right after a resume

    def on_epoch_start(self, state: FitState) -> None:
        self.apply(state.epoch)

    def trainable_groups(self) -> list[str]:
        from ..freezing import _params, layer_groups

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
    steps early, heavy averaging late. All floating-point weights and buffers (BatchNorm
    statistics too) take part; nothing is read back from the device.

    At the run's last step the model takes the slow weights, before the last epoch is
    validated and checkpointed, so the returned model, its last ``val_acc`` and the
    checkpoint files all describe the same weights. A run stopped early keeps the weights
    it was validated with. The slow copy is saved in checkpoints and, after a resume,
    moved to the model's device. Needs a training loader with a length (``len``).

    Example:
        >>> fit(model, train_loader, epochs=5, callbacks=[Lookahead()])  # doctest: +SKIP
    """

    def __init__(self, every: int = 5, base: float = 0.95**5, power: float = 3.0) -> None:
        self.every, self.base, self.power = every, base, power
        self.slow: dict[str, torch.Tensor] | None = None
        self.total = 1
        self.swapped = False

    def _floats(self, model: nn.Module) -> dict[str, torch.Tensor]:
        return {k: v for k, v in model.state_dict().items() if v.is_floating_point()}

    def on_fit_start(self, state: FitState) -> None:
        if not hasattr(state.train_loader, "__len__"):
            raise ConfigurationError("Lookahead needs a training loader with a length (its "
                                     "schedule follows the share of steps done).")  # fmt: skip
        self.total = max(1, state.epochs * len(state.train_loader))
        fast = self._floats(state.model)
        if self.slow is None:
            self.slow = {k: v.detach().clone() for k, v in fast.items()}
        else:  # restored from a checkpoint (on the CPU): to where the weights are
            self.slow = {k: self.slow[k].to(v.device, v.dtype) for k, v in fast.items()}

    @torch.no_grad()
    def _update(self, state: FitState, decay: float) -> None:
        for name, fast in self._floats(state.model).items():
            slow = self.slow[name]
            slow.lerp_(fast, 1 - decay)
            fast.copy_(slow)

    def on_step_end(self, state: FitState) -> None:
        if state.step % self.every == 0:
            self._update(state, self.base * min(1.0, state.step / self.total) ** self.power)
        if state.step >= self.total and not self.swapped:
            self._swap(state)

    def on_epoch_end(self, state: FitState) -> None:
        if state.epoch >= state.epochs and not self.swapped:  # a loader whose len was off
            self._swap(state)

    def _swap(self, state: FitState) -> None:
        self._update(state, 1.0)  # the model takes the slow weights
        self.swapped = True

    def state_dict(self) -> dict:
        return {"slow": self.slow, "swapped": self.swapped}

    def load_state_dict(self, state: dict) -> None:
        self.slow, self.swapped = state["slow"], state.get("swapped", False)


__all__ = ["EarlyStopping", "GradualUnfreezing", "Lookahead", "ProgressiveResizing"]

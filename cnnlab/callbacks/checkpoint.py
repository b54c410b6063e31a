""":class:`ModelCheckpoint`: a full training checkpoint after every epoch, written
atomically, and an exact resume from it, on one process or under ``torchrun``."""

from __future__ import annotations

import socket
import warnings
from collections.abc import Sequence
from pathlib import Path

from .. import distributed
from ..errors import ConfigurationError
from ..history import History, is_better
from ..models import unwrap
from ..settings import rng_state
from .base import Callback, FitState


class ModelCheckpoint(Callback):
    """Save a full training checkpoint after every epoch, atomically, and resume from it.

    The file holds what an exact resume needs: weights, optimizer, scheduler, gradient
    scaler, History, every random generator (each process's own under torchrun, and the
    loader's shuffling one) and the other callbacks' state. It is written to a temporary
    file and renamed, so a crash during a save leaves the previous checkpoint intact.
    Restored state lands on the model's device (the file is read onto the CPU first).

    Args:
        path: the checkpoint file.
        resume: when ``path`` exists, continue from it: ``fit`` starts at the epoch after
            the saved one, and ends exactly as an uninterrupted run would (on the CPU,
            with ``num_workers=0``: worker processes' random state cannot be saved). A
            run that had already finished (all its epochs, or stopped early) is not
            trained further: ``fit`` says so and returns the saved History. Under
            torchrun every process must see the file (a shared disk): if some do and
            others do not, every process stops with a message instead of hanging.
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

    order = 100  # saves after the others, so that their end-of-epoch state is saved

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

    def _visible_everywhere(self) -> bool:
        """Whether every process sees the checkpoint; refuses when only some do (their
        loops would differ in length and the job would hang)."""
        seen = distributed.all_gather_object((self.path.exists(), socket.gethostname()))
        if len({exists for exists, _ in seen}) == 1:
            return seen[0][0]
        blind = [f"rank {r} on {host}" for r, (exists, host) in enumerate(seen) if not exists]
        raise ConfigurationError(
            f"{self.path} exists for some processes but not for {', '.join(blind)}: resuming "
            "needs the checkpoint on a disk that every machine shares (or a copy at the same "
            "path on each machine). Copy it there, or pass resume=False to start again."
        )

    def on_resume(self, state: FitState) -> None:
        from ..checkpoints import load_checkpoint

        if not (self.resume and self._visible_everywhere()):
            return
        saved = load_checkpoint(self.path, unwrap(state.model), state.optimizer, state.scheduler,
                                restore_rng=True, scaler=state.scaler,
                                loader_generator=getattr(state.train_loader, "generator", None),
                                rank=distributed.rank(), world=distributed.world_size())  # fmt: skip
        state.epoch = self.resumed_from = saved["epoch"]
        state.step = saved["extra"].get("step", 0)
        state.history = History.from_dict(saved["history"])
        _load_callback_states(state.callbacks, saved["extra"].get("callbacks", {}))
        say = print if state.is_main_process else (lambda *_: None)
        if saved["extra"].get("stopped_early"):
            state.nothing_to_train = True
            say(f"{self.path}: this run stopped early after epoch {saved['epoch']}, so there is "
                "nothing to resume; pass overwrite=True (cnnlab train --overwrite) to train again")  # fmt: skip
            return
        if saved["epoch"] >= state.epochs:
            state.nothing_to_train = True
            say(f"{self.path}: already trained {saved['epoch']} of {state.epochs} epochs, nothing "
                "to resume; raise epochs to train further, or pass overwrite=True to start again")  # fmt: skip
            return
        workers = getattr(state.train_loader, "num_workers", 0)
        if workers:
            warnings.warn(
                f"resuming with num_workers={workers}: the worker processes' random state "
                "(random augmentation, shuffling seeds) is not in the checkpoint, so the "
                "resumed epochs differ slightly from an uninterrupted run. Build the loader "
                "with num_workers=0 when you need an exact repeat.",
                stacklevel=2,
            )
        say(f"resumed from {self.path} after epoch {saved['epoch']} of {state.epochs}")

    def on_epoch_end(self, state: FitState) -> None:
        from ..checkpoints import atomic_save, save_checkpoint

        model = unwrap(state.model)
        if self.monitor is not None:
            value = getattr(state.history, self.monitor)[-1]
            if is_better(self.monitor, value, self.best):
                self.best = value
                if state.is_main_process:
                    atomic_save(model.state_dict(), self.best_path)
        # under torchrun, every process's own generators (alone, the file's "rng" is enough)
        rngs = distributed.all_gather_object(rng_state()) if distributed.is_distributed() else None
        if not state.is_main_process:
            return
        extra = {"step": state.step, "callbacks": _states(state.callbacks),
                 "stopped_early": state.stop_training}  # fmt: skip
        save_checkpoint(self.path, model, state.optimizer, state.scheduler, state.epoch,
                        state.history, scaler=state.scaler, extra=extra, rng_per_rank=rngs,
                        loader_generator=getattr(state.train_loader, "generator", None))  # fmt: skip

    def on_fit_end(self, state: FitState) -> None:
        distributed.barrier()  # under torchrun: fit returns once rank 0's last save is on disk

    def state_dict(self) -> dict:
        return {"best": self.best}

    def load_state_dict(self, state: dict) -> None:
        self.best = state["best"]


def _keys(callbacks: list[Callback]) -> list[str]:
    """A name per callback that survives adding or removing callbacks of other kinds:
    its class and how many of that class came before it (``"Lookahead#0"``)."""
    names = [type(c).__name__ for c in callbacks]
    return [f"{name}#{names[:i].count(name)}" for i, name in enumerate(names)]


def _states(callbacks: list[Callback]) -> dict:
    return {key: cb.state_dict() for key, cb in zip(_keys(callbacks), callbacks, strict=True)}


def _load_callback_states(callbacks: list[Callback], states: dict) -> None:
    for i, (key, callback) in enumerate(zip(_keys(callbacks), callbacks, strict=True)):
        old = f"{i}:{type(callback).__name__}"  # how cnnlab before 0.2 named them
        if key in states or old in states:
            callback.load_state_dict(states.get(key, states.get(old)))
        elif callback.state_dict():
            warnings.warn(f"the checkpoint holds no state for callback {key}: it starts afresh "
                          "(resume with the same callbacks).", stacklevel=3)  # fmt: skip


__all__ = ["ModelCheckpoint"]

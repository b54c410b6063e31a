"""Callbacks: small objects that ``fit`` calls at fixed moments of training.

Keras (``model.fit(callbacks=[...])``) and fastai taught a generation of learners this
shape: the loop stays short, and checkpointing, early stopping, logging and unfreezing
schedules hook onto it. ``fit`` calls every callback's methods in this order::

    validate(metrics)          before anything runs: checks monitors and options
    on_resume(state)           once, after the model is on its device: ModelCheckpoint
                               restores a run here, before any callback starts
    on_fit_start(state)        once, seeing the resumed state (epoch, history, callbacks')
        on_epoch_start(state)      before each epoch's first batch
            on_step_end(state)         after every optimizer step
        on_epoch_end(state)        after validation; state.history has the epoch's row
        (training stops here when a callback set state.stop_training)
    on_fit_end(state)          once, when training ends normally or stops early

Callbacks run in the order of their ``order`` attribute (0 by default), then in list
order. :class:`ModelCheckpoint` has order 100: it saves last, so that the checkpoint it
writes holds the other callbacks' state as of the end of the epoch; it restores first,
in ``on_resume``, so that every ``on_fit_start`` sees the resumed run. A resume that finds
the run already finished (all epochs done, or stopped early) trains nothing: ``fit``
calls ``on_fit_end`` and returns the saved History.

Where each callback lives: :mod:`~cnnlab.callbacks.base` (the protocol),
:mod:`~cnnlab.callbacks.training` (EarlyStopping, GradualUnfreezing, ProgressiveResizing,
Lookahead), :mod:`~cnnlab.callbacks.checkpoint` (ModelCheckpoint) and
:mod:`~cnnlab.callbacks.tensorboard` (TensorBoard).

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

from .base import Callback, FitState, LambdaCallback, check_monitor, sorted_callbacks
from .checkpoint import ModelCheckpoint
from .tensorboard import TensorBoard
from .training import EarlyStopping, GradualUnfreezing, Lookahead, ProgressiveResizing

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

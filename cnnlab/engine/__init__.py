"""The training engine: one epoch of training, evaluation, and ``fit`` that loops over epochs.

Everything a step needs is an argument (model, data, loss, optimizer, device), as in
torchvision's reference scripts, and one loop serves CPU and GPU, float32 and mixed
precision. Where each part lives:

- :mod:`cnnlab.engine.loop` -- ``train_one_epoch``, ``evaluate``, ``tta_logits``: the loop
  over batches;
- :mod:`cnnlab.engine.fit` -- ``fit``: epochs, validation, callbacks, DDP wrapping;
- :mod:`cnnlab.engine.options` -- ``fit``'s options checked before the first batch.

What is not the loop itself (checkpoints, early stopping, logging, unfreezing schedules)
lives in :mod:`cnnlab.callbacks`.

Example:
    >>> from cnnlab.engine import fit, evaluate
    >>> history = fit(SimpleCNN(), train_loader, val_loader, epochs=3)  # doctest: +SKIP
"""

from ..history import EpochResult, History
from .fit import fit
from .loop import evaluate, train_one_epoch, tta_logits
from .options import check_fit_options

__all__ = [
    "EpochResult",
    "History",
    "check_fit_options",
    "evaluate",
    "fit",
    "train_one_epoch",
    "tta_logits",
]

"""fit checks every option, and every callback's monitor, before it draws a batch: each
conflict fails at once with a message that names the fix, never after a whole epoch."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from cnnlab.callbacks import Callback, EarlyStopping, ModelCheckpoint
from cnnlab.engine import fit
from cnnlab.errors import ConfigurationError
from cnnlab.models import SimpleCNN


class Unreadable:
    """A loader that fails as soon as anything iterates it."""

    def __init__(self, batches: int = 4) -> None:
        self.batches = batches

    def __len__(self):
        return self.batches

    def __iter__(self):
        raise AssertionError("the loader was iterated before the options were checked")


def _fit(**options):
    model = options.pop("model", None) or SimpleCNN()
    return fit(model, options.pop("train", Unreadable()), options.pop("val", Unreadable()),
               epochs=options.pop("epochs", 1), device="cpu", progress=False, **options)  # fmt: skip


def test_a_misspelt_monitor_names_the_valid_ones_before_the_loader_runs():
    with pytest.raises(ValueError, match=r"'val_accuracy'.*Valid monitors: train_loss, train_acc, "
                                         r"val_loss, val_acc"):  # fmt: skip
        _fit(callbacks=[EarlyStopping(monitor="val_accuracy")])


def test_plateau_mode_must_match_the_monitor():
    model = SimpleCNN()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer)  # mode="min"
    with pytest.raises(ConfigurationError, match=r"mode='min' for 'val_acc'.*mode='max'"):
        _fit(model=model, optimizer=optimizer, scheduler=plateau, scheduler_monitor="val_acc")
    with pytest.raises(ConfigurationError, match="scheduler_interval='epoch'"):
        _fit(model=model, optimizer=optimizer, scheduler=plateau, scheduler_interval="step")
    with pytest.raises(ConfigurationError, match="only applies to ReduceLROnPlateau"):
        _fit(model=model, optimizer=optimizer, scheduler_monitor="val_loss")


def test_options_that_would_be_silently_ignored_are_refused():
    model = SimpleCNN()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(ConfigurationError, match="both an optimizer and lr=.*drop lr="):
        _fit(model=model, optimizer=optimizer, lr=0.01)
    with pytest.raises(ConfigurationError, match=r"CrossEntropyLoss\(label_smoothing=...\)"):
        _fit(loss_fn=nn.CrossEntropyLoss(), label_smoothing=0.1)
    with pytest.raises(ConfigurationError, match="optimizer holds none of this model's parameters"):
        _fit(model=SimpleCNN(), optimizer=optimizer)
    other = torch.optim.SGD(model.parameters(), lr=0.1)
    scheduler = torch.optim.lr_scheduler.StepLR(other, step_size=1)
    with pytest.raises(ConfigurationError, match="built on another optimizer"):
        _fit(model=model, optimizer=optimizer, scheduler=scheduler)
    with pytest.raises(ConfigurationError, match="a scheduler but no optimizer"):
        _fit(model=model, scheduler=scheduler)


def test_empty_loaders_and_options_without_their_data_are_refused():
    with pytest.raises(ConfigurationError, match="validation loader has no batches"):
        _fit(val=Unreadable(batches=0))
    with pytest.raises(ConfigurationError, match="training loader has no batches"):
        _fit(train=Unreadable(batches=0))
    with pytest.raises(ConfigurationError, match="tta_flip and tta_translate apply to validation"):
        fit(SimpleCNN(), Unreadable(), epochs=1, tta_flip=True, device="cpu")
    with pytest.raises(ConfigurationError, match="epochs must be a whole number"):
        _fit(epochs=0)
    with pytest.raises(ConfigurationError, match="grad_clip must be a positive number"):
        _fit(grad_clip=0)


def test_callbacks_are_checked_too(tmp_path):
    with pytest.raises(ConfigurationError, match="mode='min' for 'val_acc'"):
        _fit(callbacks=[EarlyStopping("val_acc", mode="min")])
    (tmp_path / "last.pt").write_bytes(b"a previous run")
    with pytest.raises(ConfigurationError, match="already holds a checkpoint"):
        _fit(callbacks=[ModelCheckpoint(tmp_path / "last.pt")])
    with pytest.raises(ConfigurationError, match="LambdaCallback"):
        _fit(callbacks=[lambda state: None])

    class Picky(Callback):
        def validate(self, metrics):
            raise ConfigurationError("picky says no")

    with pytest.raises(ConfigurationError, match="picky says no"):
        _fit(callbacks=[Picky()])

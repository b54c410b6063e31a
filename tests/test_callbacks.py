"""Callbacks: the documented order of events, a learner's own callback, early stopping,
progressive resizing, and a hot loop that never waits for the device within a step."""

from __future__ import annotations

import pytest
import torch

from cnnlab import seed_everything
from cnnlab.callbacks import (
    Callback,
    EarlyStopping,
    LambdaCallback,
    ModelCheckpoint,
    ProgressiveResizing,
)
from cnnlab.data import DecodedImages, TensorLoader
from cnnlab.engine import fit
from cnnlab.models import FastNet, SimpleCNN


def _data(n: int, seed: int = 0) -> DecodedImages:
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, 3, 32, 32), generator=g, dtype=torch.uint8)
    return DecodedImages(
        images, torch.randint(0, 10, (n,), generator=g), [str(i) for i in range(10)]
    )


class Recorder(Callback):
    def __init__(self, name, log, order=0):
        self.name, self.log, self.order = name, log, order

    def on_fit_start(self, state):
        self.log.append((self.name, "fit_start", state.epoch))

    def on_epoch_start(self, state):
        self.log.append((self.name, "epoch_start", state.epoch))

    def on_step_end(self, state):
        self.log.append((self.name, "step_end", state.step))

    def on_epoch_end(self, state):
        self.log.append((self.name, "epoch_end", len(state.history)))

    def on_fit_end(self, state):
        self.log.append((self.name, "fit_end", state.epoch))


def test_events_come_in_the_documented_order():
    log: list = []
    loader = TensorLoader(_data(8), batch_size=4)
    fit(SimpleCNN(), loader, epochs=2, device="cpu", progress=False,
        callbacks=[Recorder("late", log, order=5), Recorder("early", log)])  # fmt: skip
    mine = [(event, n) for name, event, n in log if name == "early"]
    assert mine == [("fit_start", 0), ("epoch_start", 1), ("step_end", 1), ("step_end", 2),
                    ("epoch_end", 1), ("epoch_start", 2), ("step_end", 3), ("step_end", 4),
                    ("epoch_end", 2), ("fit_end", 2)]  # fmt: skip
    # for every event, order 0 before order 5
    assert [name for name, event, _ in log if event == "epoch_end"] == ["early", "late"] * 2


def test_a_learners_callback_can_stop_training():
    class StopAtAccuracy(Callback):
        monitor = "train_acc"

        def on_epoch_end(self, state):
            if state.history.train_acc[-1] >= 0.0:
                state.stop_training = True

    history = fit(SimpleCNN(), TensorLoader(_data(8), batch_size=8), epochs=5, device="cpu",
                  progress=False, callbacks=[StopAtAccuracy()])  # fmt: skip
    assert len(history) == 1


def test_lambda_callback_takes_only_known_events():
    seen = []
    fit(SimpleCNN(), TensorLoader(_data(8), batch_size=8), epochs=2, device="cpu", progress=False,
        callbacks=[LambdaCallback(on_epoch_end=lambda s: seen.append(s.epoch))])  # fmt: skip
    assert seen == [1, 2]
    with pytest.raises(ValueError, match="unknown events"):
        LambdaCallback(on_batch_end=print)


def test_early_stopping_state_survives_a_resume(tmp_path):
    def run(epochs, resume):
        seed_everything(0)
        model = SimpleCNN()
        stopper = EarlyStopping("val_acc", patience=50, restore_best=True)
        loader = TensorLoader(_data(32), batch_size=16, shuffle=True, seed=0)
        fit(model, loader, TensorLoader(_data(16, seed=1), batch_size=16), epochs=epochs,
            optimizer=torch.optim.SGD(model.parameters(), lr=0.01), device="cpu", progress=False,
            callbacks=[stopper, ModelCheckpoint(tmp_path / "c.pt", resume=resume)])  # fmt: skip
        return stopper

    first = run(2, resume=False)
    resumed = run(3, resume=True)
    assert resumed.best is not None and resumed.best >= first.best
    assert resumed.best_weights is not None


def test_progressive_resizing_sets_the_size_per_epoch_and_restores_it():
    loader = TensorLoader(_data(8), batch_size=8)
    sizes = []
    fit(FastNet(), loader, epochs=3, device="cpu", progress=False,
        callbacks=[ProgressiveResizing(loader, size=16, epochs=2),
                   LambdaCallback(on_step_end=lambda s: sizes.append(loader.resize))])  # fmt: skip
    assert sizes == [16, 16, None] and loader.resize is None
    with pytest.raises(ValueError, match="TensorLoader"):
        ProgressiveResizing([], size=16, epochs=2)


READS = ("item", "tolist", "cpu", "numpy", "__bool__", "__int__", "__float__")


def _count_host_reads(monkeypatch, steps: int, precision: str = "fp32", fused=None) -> int:
    """Host reads during one fit() epoch of `steps` training steps (SGD, no scheduler)."""
    seed_everything(0)
    train = TensorLoader(_data(4 * steps), batch_size=4, shuffle=True, augment=True, seed=0)
    val = TensorLoader(_data(8, seed=1), batch_size=4)
    model = SimpleCNN()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, fused=fused)
    count = [0]
    for name in READS:
        original = getattr(torch.Tensor, name)

        def counting(self, *args, _original=original, **kwargs):
            count[0] += 1
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, counting)
    fit(model, train, val, epochs=1, optimizer=optimizer, device="cpu", progress=False,
        precision=precision)  # fmt: skip
    monkeypatch.undo()
    return count[0]


def test_the_hot_loop_reads_nothing_back_per_step(monkeypatch):
    """Bound: at most 8 host reads per epoch (the epoch's order, the train and validation
    totals), whatever the number of steps; with progress bars, one more per refresh
    (about every 0.5 s). Labels and inputs of a TensorLoader were checked when it was built."""
    few, many = _count_host_reads(monkeypatch, 3), _count_host_reads(monkeypatch, 24)
    assert few == many <= 8, (few, many)


def test_float16_with_a_fused_optimizer_reads_nothing_back_per_step(monkeypatch):
    """The T4 path (float16 + GradScaler), run on the CPU: with a fused optimizer the
    scaler hands the overflow check to the optimizer's kernel (no read per step); with an
    unfused one GradScaler.step reads one value per step, as the engine's docstring says."""
    fused = [_count_host_reads(monkeypatch, n, "fp16", fused=True) for n in (2, 6)]
    assert fused[0] == fused[1] <= 8, fused
    unfused = [_count_host_reads(monkeypatch, n, "fp16") for n in (2, 6)]
    assert unfused[1] - unfused[0] >= 4, unfused  # one read per extra step


def test_fits_default_optimizer_is_fused_on_cuda_only():
    from cnnlab.engine.fit import default_optimizer

    model = SimpleCNN()
    assert default_optimizer(model, None, torch.device("cuda")).defaults["fused"] is True
    assert not default_optimizer(model, None, torch.device("cpu")).defaults["fused"]

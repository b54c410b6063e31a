"""Checkpoints: round trips, exact resume, atomic writes, and refusal of pickled code."""

from __future__ import annotations

import pickle

import pytest
import torch
from torch import nn

from cnnlab import seed_everything
from cnnlab.callbacks import ModelCheckpoint
from cnnlab.checkpoints import (
    CheckpointError,
    atomic_save,
    build_with_weights,
    load_checkpoint,
    load_weights,
    safe_load,
    save_checkpoint,
    save_weights,
)
from cnnlab.data import StandInCIFAR10, cifar10_eval_transform, cifar10_train_transform, make_loader
from cnnlab.engine import History, fit
from cnnlab.errors import ConfigurationError
from cnnlab.models import SimpleCNN


def test_weights_round_trip(tmp_path):
    seed_everything(0)
    model = SimpleCNN()
    save_weights(model, tmp_path / "w.pt")
    copy = load_weights(SimpleCNN(), tmp_path / "w.pt")
    for a, b in zip(model.state_dict().values(), copy.state_dict().values(), strict=True):
        assert torch.equal(a, b)


def test_weights_that_do_not_fit_say_why(tmp_path):
    save_weights(SimpleCNN(num_classes=10), tmp_path / "w.pt")
    with pytest.raises(
        CheckpointError, match=r"do not fit this SimpleCNN.*another number of classes"
    ):
        load_weights(SimpleCNN(num_classes=5), tmp_path / "w.pt")


class _CountsBuilds(nn.Module):
    """A layer whose building reads a value (impossible on the meta device) or that keeps
    a buffer outside its state_dict (left on meta by a skeleton build)."""

    def __init__(self, reads_a_value: bool = False, loose_buffer: bool = False) -> None:
        super().__init__()
        self.fc = nn.Linear(3, 2)
        if reads_a_value:
            self.scale = float(self.fc.weight.abs().sum())  # .item() on meta raises
        if loose_buffer:
            self.register_buffer("table", torch.arange(4.0), persistent=False)


@pytest.mark.parametrize("kind", ["plain", "reads_a_value", "loose_buffer"])
def test_a_loaded_model_is_built_without_random_weights_where_it_can_be(kind, monkeypatch):
    """Predictor.load builds the network on the meta device and puts the file's tensors in
    (VGG-16's random initialisation cost a second); networks that cannot be built that
    way are built normally, and either way hold exactly the saved weights."""
    options = {"reads_a_value": kind == "reads_a_value", "loose_buffer": kind == "loose_buffer"}
    saved = _CountsBuilds(**options).state_dict()
    inits, real = [], nn.init.kaiming_uniform_

    def counted(tensor, *args, **kwargs):  # `tensor`: the meta device passes it by name
        inits.append(tensor.device)
        return real(tensor, *args, **kwargs)

    monkeypatch.setattr(nn.init, "kaiming_uniform_", counted)
    model = build_with_weights(lambda: _CountsBuilds(**options), saved, "m.pt")
    for name, tensor in saved.items():
        assert torch.equal(model.state_dict()[name], tensor), name
    assert not any(t.is_meta for t in (*model.parameters(), *model.buffers()))
    real_inits = [d for d in inits if d.type != "meta"]
    assert len(real_inits) == (0 if kind == "plain" else 1)
    if kind == "loose_buffer":
        assert torch.equal(model.table, torch.arange(4.0))
    assert model.fc.weight.requires_grad  # as the module declared it, not as loaded


def test_a_model_file_whose_weights_do_not_fit_says_why():
    with pytest.raises(CheckpointError, match=r"weights in m.pt do not fit this SimpleCNN"):
        build_with_weights(lambda: SimpleCNN(num_classes=5), SimpleCNN().state_dict(), "m.pt")


def test_checkpoint_round_trip_restores_everything(tmp_path):
    seed_everything(0)
    model = nn.Linear(3, 2)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.5)
    model(torch.randn(4, 3)).sum().backward()
    optimizer.step()
    scheduler.step()
    history = History()
    history.append(epoch=1, train_loss=1.0, train_acc=0.5, val_loss=None, val_acc=None,
                   lr=0.01, seconds=1.0)  # fmt: skip
    path = save_checkpoint(tmp_path / "c.pt", model, optimizer, scheduler, epoch=1,
                           history=history, extra={"classes": ["a", "b"]})  # fmt: skip
    model2 = nn.Linear(3, 2)
    optimizer2 = torch.optim.Adam(model2.parameters(), lr=0.01)
    scheduler2 = torch.optim.lr_scheduler.StepLR(optimizer2, step_size=1, gamma=0.5)
    state = load_checkpoint(path, model2, optimizer2, scheduler2)
    assert torch.equal(model.weight, model2.weight)
    assert optimizer2.param_groups[0]["lr"] == pytest.approx(0.005)
    assert torch.equal(optimizer.state_dict()["state"][0]["exp_avg"],
                       optimizer2.state_dict()["state"][0]["exp_avg"])  # fmt: skip
    assert state["epoch"] == 1 and History(**state["history"]).train_loss == [1.0]
    assert state["extra"] == {"classes": ["a", "b"]}
    assert state["versions"]["torch"] == torch.__version__


def _run(tmp_path, epochs, checkpoint=None, resume=False):
    """A seeded run with augmentation (random crops) and shuffling, both drawing random
    numbers that a resume must restore."""
    seed_everything(0)
    train = StandInCIFAR10(train=True, size=256, transform=cifar10_train_transform())
    test = StandInCIFAR10(train=False, size=64, transform=cifar10_eval_transform())
    model = SimpleCNN()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.7)
    callbacks = [ModelCheckpoint(checkpoint, resume=resume)] if checkpoint else []
    return fit(model, make_loader(train, 64, shuffle=True, seed=3, num_workers=0),
               make_loader(test, 64, num_workers=0), epochs=epochs, optimizer=optimizer,
               scheduler=scheduler, device="cpu", progress=False, callbacks=callbacks)  # fmt: skip


def test_resume_gives_the_same_history_as_an_uninterrupted_run(tmp_path):
    straight = _run(tmp_path, epochs=4)
    path = tmp_path / "run.pt"
    _run(tmp_path, epochs=2, checkpoint=path)  # "interrupted" after epoch 2
    seed_everything(123)  # a new session: the generators are anywhere
    resumed = _run(tmp_path, epochs=4, checkpoint=path, resume=True)
    assert resumed.epoch == [1, 2, 3, 4]
    for name in ("train_loss", "train_acc", "val_loss", "val_acc", "lr"):
        assert getattr(resumed, name) == getattr(straight, name), name


def test_resuming_with_worker_processes_warns_that_it_is_not_exact(tmp_path):
    train = StandInCIFAR10(train=True, size=64, transform=cifar10_train_transform())
    path = tmp_path / "run.pt"
    fit(SimpleCNN(), make_loader(train, 32, num_workers=0), epochs=1, device="cpu",
        progress=False, callbacks=[ModelCheckpoint(path)])  # fmt: skip
    loader = make_loader(train, 32, shuffle=True, seed=0, num_workers=1)
    with pytest.warns(UserWarning, match="num_workers=0 when you need an exact repeat"):
        fit(SimpleCNN(), loader, epochs=2, device="cpu", progress=False,
            callbacks=[ModelCheckpoint(path, resume=True)])  # fmt: skip


def test_an_existing_checkpoint_is_never_overwritten_unasked(tmp_path):
    path = tmp_path / "run.pt"
    loader = make_loader(StandInCIFAR10(size=32, transform=cifar10_eval_transform()), 16,
                         num_workers=0)  # fmt: skip
    fit(SimpleCNN(), loader, epochs=1, device="cpu", progress=False,
        callbacks=[ModelCheckpoint(path)])  # fmt: skip
    before = path.read_bytes()
    with pytest.raises(ConfigurationError, match=r"resume=True\) to continue.*overwrite=True"):
        fit(SimpleCNN(), loader, epochs=1, device="cpu", progress=False,
            callbacks=[ModelCheckpoint(path)])  # fmt: skip
    assert path.read_bytes() == before
    fit(SimpleCNN(), loader, epochs=1, device="cpu", progress=False,
        callbacks=[ModelCheckpoint(path, overwrite=True)])  # fmt: skip
    assert path.read_bytes() != before


def test_an_interrupted_save_leaves_the_previous_checkpoint_loadable(tmp_path, monkeypatch):
    path = tmp_path / "c.pt"
    save_weights(nn.Linear(2, 2), path)
    good = path.read_bytes()

    def crash_halfway(obj, f, *args, **kwargs):
        f.write(b"PK\x03\x04 half a zip file")
        raise KeyboardInterrupt  # Ctrl-C in the middle of writing

    monkeypatch.setattr(torch, "save", crash_halfway)
    with pytest.raises(KeyboardInterrupt):
        atomic_save({"w": torch.ones(3)}, path)
    monkeypatch.undo()
    assert path.read_bytes() == good
    load_weights(nn.Linear(2, 2), path)
    assert [p.name for p in tmp_path.iterdir()] == ["c.pt"]  # no temporary file left behind


class Payload:
    """A pickle that runs code when loaded (here: only records that it ran)."""

    def __reduce__(self):
        return (print, ("pwned: this ran while unpickling",))


def test_a_malicious_pickle_is_refused(tmp_path, capsys):
    path = tmp_path / "model.pt"
    with open(path, "wb") as f:
        torch.save({"model": Payload()}, f, pickle_module=pickle)
    with pytest.raises(CheckpointError, match="could run arbitrary code") as info:
        safe_load(path)
    assert "pwned" not in capsys.readouterr().out
    assert "state_dict" in str(info.value)


def test_a_whole_model_pickle_is_refused_with_the_way_out(tmp_path):
    path = tmp_path / "whole.pt"
    torch.save(SimpleCNN(), path)  # the seed tutorial's way
    with pytest.raises(CheckpointError, match=r"re-save\s+model.state_dict\(\)"):
        load_weights(SimpleCNN(), path)


def test_damaged_and_missing_files_are_named(tmp_path):
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="is a text file, not a PyTorch checkpoint"):
        safe_load(tmp_path / "bad.pt")
    with pytest.raises(
        CheckpointError, match=r"missing\.pt is no file, not a checkpoint: check the path"
    ):
        safe_load(tmp_path / "missing.pt")
    save_weights(nn.Linear(1, 1), tmp_path / "plain.pt")
    with pytest.raises(CheckpointError, match="load_weights"):
        load_checkpoint(tmp_path / "plain.pt", nn.Linear(1, 1))


def _rates_after_resume(make_scheduler, with_state: bool, steps: int = 12, stop: int = 5):
    """Learning rates per step of a run interrupted after ``stop`` steps and resumed with
    the optimizer's state, and the scheduler's state only when ``with_state``."""
    param = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([param], lr=0.1, momentum=0.9)
    scheduler = make_scheduler(optimizer, steps)
    rates = []
    for _ in range(stop):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    saved = optimizer.state_dict(), scheduler.state_dict()
    optimizer = torch.optim.SGD([param], lr=0.1, momentum=0.9)
    scheduler = make_scheduler(optimizer, steps)  # built first, then the states loaded
    optimizer.load_state_dict(saved[0])
    if with_state:
        scheduler.load_state_dict(saved[1])
    for _ in range(steps - stop):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return rates


def test_resuming_without_the_scheduler_state_breaks_one_cycle_but_not_step_lr():
    """Notebook 06, exercise 1: a chainable StepLR(step_size=1) rebuilt on the restored
    optimizer continues from the restored rate, so dropping its state goes unnoticed;
    a closed-form schedule such as OneCycleLR starts its warm-up again."""

    def one_cycle(o, n):
        return torch.optim.lr_scheduler.OneCycleLR(o, max_lr=0.1, total_steps=n)

    def step_lr(o, n):
        return torch.optim.lr_scheduler.StepLR(o, step_size=1, gamma=0.8)

    for make, same in ((step_lr, True), (one_cycle, False)):
        exact = _rates_after_resume(make, with_state=True)
        assert exact == pytest.approx(_rates_after_resume(make, with_state=True, stop=12))
        assert (_rates_after_resume(make, with_state=False) == pytest.approx(exact)) is same


def test_stale_temporaries_are_judged_by_machine_then_by_process_or_age(tmp_path):
    """On a shared disk, another machine's process ids mean nothing here: its leftovers
    are removed only once they are old; this machine's, when their writer is gone."""
    import os
    import time

    from cnnlab.checkpoints import STALE_AFTER_SECONDS, _host, remove_stale_temporaries

    dead = 2**22 + 12345  # above any pid this machine hands out
    mine_dead = tmp_path / f".last.pt.{_host()}.{dead}.abc.tmp"
    mine_alive = tmp_path / f".last.pt.{_host()}.{os.getpid()}.abc.tmp"
    theirs_fresh = tmp_path / f".last.pt.node-b.{os.getpid()}.abc.tmp"  # same pid, other host
    theirs_old = tmp_path / f".last.pt.node-c.{dead}.abc.tmp"
    old_style = tmp_path / f".last.pt.{dead}.abc.tmp"  # cnnlab before 0.2: pid only
    for path in (mine_dead, mine_alive, theirs_fresh, theirs_old, old_style):
        path.write_bytes(b"partial")
    past = time.time() - STALE_AFTER_SECONDS - 60
    os.utime(theirs_old, (past, past))
    removed = set(remove_stale_temporaries(tmp_path, "last.pt"))
    assert removed == {mine_dead, theirs_old, old_style}
    assert mine_alive.exists() and theirs_fresh.exists()

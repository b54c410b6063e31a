import math
import re
import warnings

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from cnnlab import seed_everything
from cnnlab.callbacks import EarlyStopping
from cnnlab.data import make_loader, subset
from cnnlab.engine import History, evaluate, fit, train_one_epoch
from cnnlab.errors import ConfigurationError
from cnnlab.models import SimpleCNN


def test_simplecnn_learns_the_standin(standin_train, standin_test):
    """The acceptance test: trained with fit, SimpleCNN beats chance (10%) by a wide margin."""
    seed_everything(0)
    model = SimpleCNN()
    train = make_loader(standin_train, 64, shuffle=True, seed=0, num_workers=0)
    test = make_loader(standin_test, 250, num_workers=0)
    before = evaluate(model, test, device="cpu").accuracy
    history = fit(model, train, epochs=2, progress=False, device="cpu")
    after = evaluate(model, test).accuracy  # held-out images the model never saw
    assert before < 0.2
    assert after > 0.5, f"held-out accuracy {after:.1%} is not far above chance"
    assert history.train_loss[1] < history.train_loss[0]


def _run(seed, loaders):
    seed_everything(seed)
    train, test = loaders
    return fit(SimpleCNN(), train, test, epochs=2, progress=False, device="cpu")


def test_same_seed_same_history_on_cpu(standin_train, standin_test):
    def loaders():  # 512 images, 4 shuffled batches an epoch: enough to differ by seed
        return (
            make_loader(subset(standin_train, 512), 128, shuffle=True, seed=1, num_workers=0),
            make_loader(subset(standin_test, 250), 250, num_workers=0),
        )

    a, b = _run(1, loaders()), _run(1, loaders())
    for field in ("train_loss", "train_acc", "val_loss", "val_acc", "lr"):
        assert getattr(a, field) == getattr(b, field), field
    c = _run(2, loaders())
    assert c.train_loss != a.train_loss


def test_history_records_every_epoch(tiny_loaders):
    h = fit(SimpleCNN(), *tiny_loaders, epochs=3, progress=False, device="cpu")
    assert h.epoch == [1, 2, 3] and len(h) == 3
    assert all(s > 0 for s in h.seconds) and all(0 <= a <= 1 for a in h.val_acc)
    assert "val_acc" in str(h) and set(h.as_dict()) >= {"train_loss", "val_loss", "lr"}


def test_epoch_and_step_schedulers(tiny_loaders):
    train, test = tiny_loaders
    model = SimpleCNN()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    h = fit(
        model, train, test, epochs=3, optimizer=opt, scheduler=sched, progress=False, device="cpu"
    )
    assert h.lr == pytest.approx([0.1, 0.05, 0.025])

    model = SimpleCNN()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    steps = len(train) * 2
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.1, total_steps=steps)
    fit(
        model,
        train,
        epochs=2,
        optimizer=opt,
        scheduler=sched,
        scheduler_interval="step",
        progress=False,
        device="cpu",
    )
    assert sched.last_epoch == steps  # stepped once per batch


def test_plateau_scheduler_gets_the_monitored_value(tiny_loaders):
    model = SimpleCNN()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, patience=0, factor=0.5)
    seen = []
    original = sched.step
    sched.step = lambda value: (seen.append(value), original(value))
    h = fit(
        model, *tiny_loaders, epochs=2, optimizer=opt, scheduler=sched, progress=False, device="cpu"
    )
    assert seen == h.val_loss


def test_early_stopping_and_restore_best(tiny_loaders):
    train, test = tiny_loaders
    seed_everything(0)
    model = SimpleCNN()
    # A learning rate this high makes the loss blow up after the first epoch.
    opt = torch.optim.SGD(model.parameters(), lr=5.0)
    stopper = EarlyStopping("val_acc", patience=2, restore_best=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the diverging loss warns; that is the point here
        h = fit(model, train, test, epochs=10, optimizer=opt, callbacks=[stopper],
                progress=False, device="cpu")  # fmt: skip
    assert len(h) < 10
    best = h.best_epoch("val_acc")
    assert stopper.best_epoch == best and stopper.stopped_epoch == len(h)
    assert len(h) == best + 2  # stopped exactly `patience` epochs after the best
    restored = evaluate(model, test).accuracy
    assert restored == pytest.approx(h.val_acc[best - 1])


def test_a_monitor_needs_the_data_it_watches(tiny_loaders):
    with pytest.raises(
        ConfigurationError, match=r"val_loader=.*Valid monitors: train_loss, train_acc"
    ):
        fit(SimpleCNN(), tiny_loaders[0], epochs=1, progress=False, device="cpu",
            callbacks=[EarlyStopping("val_loss")])  # fmt: skip
    h = fit(SimpleCNN(), tiny_loaders[0], epochs=1, progress=False, device="cpu",
            callbacks=[EarlyStopping("train_loss", patience=None, restore_best=True)])  # fmt: skip
    assert h.val_loss == [None] and h.best_epoch("train_loss") == 1
    with pytest.raises(ValueError, match="pass val_loader"):
        h.best_epoch("val_loss")


@pytest.mark.parametrize("has_bf16", [False, True])
def test_cpu_auto_precision_follows_the_cpus_instructions(tiny_loaders, monkeypatch, has_bf16):
    from cnnlab import settings

    monkeypatch.setattr(settings, "cpu_has_bf16", lambda: has_bf16)
    dtypes = []
    model = SimpleCNN()
    model.classifier.register_forward_hook(lambda m, i, out: dtypes.append(out.dtype))
    fit(model, tiny_loaders[0], epochs=1, precision="auto", progress=False, device="cpu")
    assert set(dtypes) == {torch.bfloat16 if has_bf16 else torch.float32}
    dtypes.clear()
    fit(model, tiny_loaders[0], epochs=1, progress=False, device="cpu")  # the default: fp32
    assert set(dtypes) == {torch.float32}


def test_grad_clip_bounds_the_update():
    model = nn.Linear(4, 2)
    loader = DataLoader(
        TensorDataset(torch.randn(8, 4) * 1e4, torch.zeros(8, dtype=torch.long)), batch_size=8
    )
    before = [p.detach().clone() for p in model.parameters()]
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    train_one_epoch(
        model,
        loader,
        nn.CrossEntropyLoss(),
        opt,
        torch.device("cpu"),
        grad_clip=0.5,
        progress=False,
    )
    moved = torch.sqrt(
        sum(((p - b) ** 2).sum() for p, b in zip(model.parameters(), before, strict=True))
    )
    assert moved <= 0.5 + 1e-5


def test_evaluate_restores_training_mode_and_needs_data(tiny_loaders):
    model = SimpleCNN().train()
    evaluate(model, tiny_loaders[1])
    assert model.training
    empty = DataLoader(TensorDataset(torch.zeros(0, 3, 32, 32), torch.zeros(0, dtype=torch.long)))
    with pytest.raises(ValueError, match="yielded no batches"):
        evaluate(model, empty)
    with pytest.raises(ValueError, match="training loader has no batches"):
        fit(model, empty, epochs=1, progress=False, device="cpu")


def test_bad_scheduler_interval():
    with pytest.raises(ValueError, match="'epoch' or 'step'"):
        fit(SimpleCNN(), [], scheduler_interval="batch")


def test_old_keywords_say_what_replaced_them():
    for name, hint in [("amp", "precision='auto'"), ("early_stopping", "EarlyStopping"),
                       ("keep_best", "restore_best=True"), ("checkpoint", "ModelCheckpoint"),
                       ("epoch_end", "LambdaCallback")]:  # fmt: skip
        with pytest.raises(
            TypeError, match=f"fit\\(\\) no longer takes {name}=.*{re.escape(hint)}"
        ):
            fit(SimpleCNN(), [], **{name: True})


def test_history_best_epoch_direction():
    h = History()
    for e, (loss, acc) in enumerate([(1.0, 0.5), (0.5, 0.4), (0.7, 0.9)], start=1):
        h.append(
            epoch=e, train_loss=loss, train_acc=acc, val_loss=loss, val_acc=acc, lr=0.1, seconds=1.0
        )
    assert h.best_epoch("val_loss") == 2 and h.best_epoch("val_acc") == 3


class CountingLoader:
    """A list of batches that counts how often a pass over it is started."""

    def __init__(self, batches):
        self.batches, self.passes = batches, 0

    def __len__(self):
        return len(self.batches)

    def __iter__(self):
        self.passes += 1
        return iter(self.batches)


def test_fit_starts_one_pass_per_epoch_over_each_loader():
    # tqdm.auto calls iter() when it is created and again when the loop starts: a
    # DataLoader would draw an extra seed each epoch, or start its workers twice
    batches = [(torch.randn(4, 3, 32, 32), torch.randint(0, 10, (4,))) for _ in range(3)]
    train, val = CountingLoader(batches), CountingLoader(batches[:1])
    fit(SimpleCNN(), train, val, epochs=2, device="cpu", progress=True)
    assert train.passes == 2 and val.passes == 2


def test_label_smoothing_aims_at_one_minus_e_plus_e_over_k():
    """With e = 0.2 and ten classes the true class's target is 0.82, not 0.8."""
    loss = nn.CrossEntropyLoss(label_smoothing=0.2)
    target = torch.tensor([3])
    best = torch.full((1, 10), 0.02).log()
    best[0, 3] = math.log(0.82)
    assert loss(best, target) <= loss(best + torch.randn(1, 10) * 0.01, target)
    smoothed = torch.full((10,), 0.2 / 10)
    smoothed[3] += 0.8
    assert float(smoothed[3]) == pytest.approx(0.82)
    expected = -(smoothed * best.log_softmax(1)[0]).sum()
    assert float(loss(best, target)) == pytest.approx(float(expected))


def test_each_named_schedule_gives_the_rates_notebook_02_describes():
    from cnnlab.schedules import named_schedule

    def rates(name, steps=9):
        opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.05)
        sched = named_schedule(name, opt, steps)
        out = []
        for _ in range(steps):
            out.append(round(opt.param_groups[0]["lr"], 6))
            opt.step()
            sched.step()
        return out

    assert rates("constant") == [0.05] * 9
    assert rates("step") == [0.05] * 6 + [0.005] * 3  # divided by 10 after two thirds
    cycle = rates("one-cycle")
    assert cycle[0] < 0.01 and max(cycle) == pytest.approx(0.05, rel=0.05) and cycle[-1] < 0.001


def _linear_data(n):
    torch.manual_seed(0)
    return TensorDataset(torch.randn(n, 3, 4, 4), torch.randint(0, 3, (n,)))


def _sgd_run(data, batch_size, accumulate, **fit_options):
    torch.manual_seed(1)
    model = nn.Sequential(nn.Flatten(), nn.Linear(48, 3))  # no BatchNorm, no dropout
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    steps = []
    from cnnlab.callbacks import LambdaCallback

    fit(model, DataLoader(data, batch_size), epochs=1, optimizer=optimizer, device="cpu",
        progress=False, accumulate=accumulate,
        callbacks=[LambdaCallback(on_step_end=lambda s: steps.append(s.step))], **fit_options)  # fmt: skip
    return model, steps


def test_accumulating_k_batches_is_one_step_on_a_k_times_larger_batch():
    data = _linear_data(64)
    big, big_steps = _sgd_run(data, 32, accumulate=1)
    small, small_steps = _sgd_run(data, 8, accumulate=4)
    plain, _ = _sgd_run(data, 8, accumulate=1)
    assert big_steps == small_steps == [1, 2]  # callbacks count optimizer steps
    for a, b, c in zip(big.parameters(), small.parameters(), plain.parameters(), strict=True):
        assert torch.allclose(a, b, atol=1e-6)
        assert not torch.allclose(a, c, atol=1e-4)  # without accumulation: 8 other steps


def test_a_short_last_group_is_divided_by_its_own_size():
    """40 images, batches of 8, groups of 4: the last group is one batch, whose gradient
    must not be divided by 4 (as one step on a last batch of 8 would not be)."""
    data = _linear_data(40)
    small, steps = _sgd_run(data, 8, accumulate=4)
    torch.manual_seed(1)
    reference = nn.Sequential(nn.Flatten(), nn.Linear(48, 3))
    optimizer = torch.optim.SGD(reference.parameters(), lr=0.5)
    for x, y in [(data.tensors[0][:32], data.tensors[1][:32]), (data.tensors[0][32:], data.tensors[1][32:])]:  # fmt: skip
        optimizer.zero_grad()
        nn.functional.cross_entropy(reference(x), y).backward()
        optimizer.step()
    assert steps == [1, 2]
    for a, b in zip(small.parameters(), reference.parameters(), strict=True):
        assert torch.allclose(a, b, atol=1e-6)


def test_accumulation_with_float16_and_a_per_step_schedule():
    """The T4's path on the CPU: float16 autocast with a GradScaler, groups of 3 batches,
    a one-cycle schedule sized in optimizer steps (it raises if stepped once too often)."""
    data = _linear_data(80)  # 10 batches of 8: groups of 3, 3, 3, 1 -> 4 steps an epoch
    model = nn.Sequential(nn.Flatten(), nn.Linear(48, 3))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    steps_per_epoch = math.ceil(10 / 3)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, 0.1, total_steps=2 * steps_per_epoch)
    history = fit(model, DataLoader(data, 8), epochs=2, optimizer=optimizer, scheduler=schedule,
                  scheduler_interval="step", precision="fp16", device="cpu", progress=False,
                  accumulate=3)  # fmt: skip
    assert history.precision == ["float16", "float16"]
    assert schedule.last_epoch == 2 * steps_per_epoch
    assert all(math.isfinite(v) for v in history.train_loss)


def test_a_loader_without_length_steps_on_its_last_group():
    data = _linear_data(24)

    class NoLength:
        def __iter__(self):
            return iter(DataLoader(data, 8))

    model = nn.Sequential(nn.Flatten(), nn.Linear(48, 3))
    before = [p.detach().clone() for p in model.parameters()]
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    steps = []
    train_one_epoch(model, NoLength(), nn.CrossEntropyLoss(), optimizer, torch.device("cpu"),
                    progress=False, accumulate=2, on_step=steps.append)  # fmt: skip
    assert len(steps) == 2  # a group of 2, then the last batch alone
    assert not torch.equal(before[0], next(model.parameters()))


@pytest.mark.parametrize("bad", [0, -1, 1.5, True])
def test_accumulate_must_be_a_whole_number_of_batches(tiny_loaders, bad):
    train, _ = tiny_loaders
    with pytest.raises(ConfigurationError, match="accumulate must be a whole number"):
        fit(SimpleCNN(), train, epochs=1, device="cpu", progress=False, accumulate=bad)

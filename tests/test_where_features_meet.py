"""Bugs that sit where two features meet, one test each: torchrun on a machine with fewer
GPUs than processes, Windows without NCCL, deterministic algorithms and cuDNN's timing
runs, DDP and a changing set of trainable parameters, compile and DDP, resuming (restore
order, finished runs, other machines' disks, each process's random state), compiled models
in checkpoints, the dtype precision="auto" picked, and the learning rate of several groups.
GPU-only paths run here with the device mocked; benchmarks/gpu_check.py runs them for real."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from cnnlab import distributed, seed_everything, settings
from cnnlab.callbacks import (
    Callback,
    EarlyStopping,
    FitState,
    LambdaCallback,
    ModelCheckpoint,
    TensorBoard,
)
from cnnlab.checkpoints import load_checkpoint, save_checkpoint
from cnnlab.data import DecodedImages, TensorLoader
from cnnlab.engine import fit
from cnnlab.engine.fit import Replicas, cudnn_benchmark
from cnnlab.errors import ConfigurationError
from cnnlab.models import SimpleCNN, SmallResNet


def _loader(n=32, batch=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, 3, 32, 32), generator=g, dtype=torch.uint8)
    data = DecodedImages(images, torch.randint(0, 10, (n,), generator=g), list("0123456789"))
    return TensorLoader(data, batch, shuffle=True, seed=0)


# --- torchrun on the machine a learner has --------------------------------------------


@pytest.fixture
def torchrun_env(monkeypatch):
    """torchrun's variables for a process, and a process group that records its backend."""
    joined = []
    monkeypatch.setattr(distributed.dist, "is_initialized", lambda: False)
    monkeypatch.setattr(distributed.dist, "init_process_group", joined.append)
    monkeypatch.setattr(torch.cuda, "set_device", lambda device: None)

    def launch(rank, per_machine, gpus, platform="linux"):
        monkeypatch.setenv("RANK", str(rank))
        monkeypatch.setenv("WORLD_SIZE", str(per_machine))
        monkeypatch.setenv("LOCAL_RANK", str(rank))
        monkeypatch.setenv("LOCAL_WORLD_SIZE", str(per_machine))
        monkeypatch.setattr(torch.cuda, "is_available", lambda: gpus > 0)
        monkeypatch.setattr(torch.cuda, "device_count", lambda: gpus)
        monkeypatch.setattr(distributed.sys, "platform", platform)
        monkeypatch.setattr(distributed.dist, "is_nccl_available", lambda: True)
        return distributed.setup()

    return launch, joined


def test_two_processes_on_colabs_one_gpu_train_on_the_cpu_and_say_so(torchrun_env, capsys):
    launch, joined = torchrun_env
    assert launch(rank=0, per_machine=2, gpus=1) == torch.device("cpu")
    assert launch(rank=1, per_machine=2, gpus=1) == torch.device("cpu")  # not cuda:1
    assert joined == ["gloo", "gloo"]
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1 and "--nproc_per_node=1" in out[0] and "CPU" in out[0]


def test_a_gpu_per_process_uses_nccl_on_linux_and_gloo_on_windows(torchrun_env):
    launch, joined = torchrun_env
    assert launch(rank=1, per_machine=2, gpus=2) == torch.device("cuda", 1)
    launch(rank=1, per_machine=2, gpus=2, platform="win32")
    assert joined == ["nccl", "gloo"]


# --- DDP, compile and the trainable set ----------------------------------------------------


def test_ddp_is_wrapped_again_when_the_trainable_set_changes_and_compiled_after(monkeypatch):
    wrapped = []

    class FakeDDP(nn.Module):
        def __init__(self, module):
            super().__init__()
            self.module, self.compiled_inner = module, module._compiled_call_impl is not None
            self.compiled = False

        def compile(self):
            self.compiled = True

    monkeypatch.setattr(distributed, "is_distributed", lambda: True)
    monkeypatch.setattr(distributed, "is_main_process", lambda: True)
    monkeypatch.setattr(
        distributed, "wrap", lambda model, device: wrapped.append(FakeDDP(model)) or wrapped[-1]
    )
    model = SmallResNet(width=4)
    model.stem.requires_grad_(False)
    replicas = Replicas(model, torch.device("cpu"), compile=True)
    first = replicas.module()
    assert replicas.module() is first  # nothing changed: the same wrapper
    model.stem.requires_grad_(True)  # a callback unfreezes a layer group
    second = replicas.module()
    assert second is not first and len(wrapped) == 2
    assert all(w.compiled and not w.compiled_inner for w in wrapped)  # wrap first, then compile


# --- cuDNN and reproducibility ------------------------------------------------------------


def test_cudnn_benchmark_stays_off_when_deterministic_algorithms_are_asked_for():
    before = torch.backends.cudnn.benchmark, torch.are_deterministic_algorithms_enabled()
    try:
        torch.backends.cudnn.benchmark = False
        with cudnn_benchmark(torch.device("cuda")):
            assert torch.backends.cudnn.benchmark
        torch.use_deterministic_algorithms(True)
        with cudnn_benchmark(torch.device("cuda")):
            assert not torch.backends.cudnn.benchmark
    finally:
        torch.backends.cudnn.benchmark = before[0]
        torch.use_deterministic_algorithms(before[1])


# --- resuming -------------------------------------------------------------------------


class SeesAtStart(Callback):
    def __init__(self):
        self.seen = []

    def on_fit_start(self, state):
        self.seen.append((state.epoch, len(state.history), state.step))


def _run(path, epochs, *callbacks, resume=True, stop_at=None, model=None):
    seed_everything(0)
    model = model or SimpleCNN(dropout=0.0)
    extra = [LambdaCallback(on_epoch_end=lambda s: setattr(s, "stop_training", s.epoch == stop_at))]
    return fit(model, _loader(), _loader(16, seed=1), epochs=epochs, device="cpu", progress=False,
               callbacks=[ModelCheckpoint(path, resume=resume, overwrite=not resume), *extra,
                          *callbacks])  # fmt: skip


def test_every_callback_starts_from_the_resumed_state(tmp_path, monkeypatch):
    path = tmp_path / "last.pt"
    _run(path, 2, resume=False)
    sees = SeesAtStart()
    logged = []
    monkeypatch.setattr("torch.utils.tensorboard.SummaryWriter.add_images",
                        lambda self, tag, *a, **k: logged.append(tag))  # fmt: skip
    board = TensorBoard(tmp_path / "tb", (torch.zeros(2, 3, 32, 32), torch.zeros(2)))
    _run(path, 3, sees, board)
    assert sees.seen == [(2, 2, 8)]  # after epoch 2's restore, not (0, 0, 0)
    assert logged == []  # the samples were logged by the first run, not again


def test_resuming_a_finished_run_trains_nothing_and_says_why(tmp_path, capsys):
    stopped, done = tmp_path / "stopped.pt", tmp_path / "done.pt"
    assert len(_run(stopped, 5, resume=False, stop_at=2)) == 2
    _run(done, 2, resume=False)
    capsys.readouterr()
    again = _run(stopped, 5)  # the same command after an early stop
    assert again.epoch == [1, 2] and "stopped early after epoch 2" in capsys.readouterr().out
    again = _run(done, 2)  # the same command after a finished run
    assert again.epoch == [1, 2] and "already trained 2 of 2 epochs" in capsys.readouterr().out
    assert _run(done, 3).epoch == [1, 2, 3]  # more epochs: it trains on


def test_a_resume_some_processes_cannot_see_stops_everyone_with_the_reason(tmp_path, monkeypatch):
    path = tmp_path / "last.pt"
    path.write_bytes(b"rank 0's checkpoint")
    monkeypatch.setattr(distributed, "all_gather_object",
                        lambda obj: [(True, "node-a"), (False, "node-b")])  # fmt: skip
    state = FitState(SimpleCNN(), None, None, torch.device("cpu"), [], None, 2)
    with pytest.raises(ConfigurationError, match="rank 1 on node-b.*shares"):
        ModelCheckpoint(path, resume=True).on_resume(state)


def test_each_process_restores_its_own_random_state(tmp_path):
    model = nn.Linear(2, 2)
    states = []
    for seed in (10, 11):  # what two processes' generators looked like at the save
        torch.manual_seed(seed)
        states.append(settings.rng_state())
    path = save_checkpoint(tmp_path / "c.pt", model, rng_per_rank=states)
    for rank, seed in enumerate((10, 11)):
        torch.manual_seed(99)
        load_checkpoint(path, model, restore_rng=True, rank=rank, world=2)
        assert torch.equal(torch.rand(3), torch.manual_seed(seed) and torch.rand(3))
    with pytest.warns(UserWarning, match="saved by 2 processes and is resumed by 3"):
        load_checkpoint(path, model, restore_rng=True, rank=0, world=3)


def test_an_old_checkpoints_gpu_states_restore_on_a_machine_with_fewer_gpus(monkeypatch):
    state = settings.rng_state() | {"cuda": [torch.zeros(16, dtype=torch.uint8)] * 2}
    restored = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.cuda, "set_rng_state", restored.append)
    settings.set_rng_state(state)  # 2 saved, this process's device 0: takes entry 0 only
    assert len(restored) == 1
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 3)  # no saved state for it
    settings.set_rng_state(state)
    assert len(restored) == 1


def test_a_compiled_model_is_saved_under_its_own_keys(tmp_path):
    net = SimpleCNN()
    state = FitState(torch.compile(net), torch.optim.SGD(net.parameters(), lr=0.1), None,
                     torch.device("cpu"), [], None, 1, epoch=1)  # fmt: skip
    ModelCheckpoint(tmp_path / "c.pt").on_epoch_end(state)
    saved = torch.load(tmp_path / "c.pt", weights_only=True)["model"]
    assert set(saved) == set(net.state_dict())  # no "_orig_mod." prefix
    load_checkpoint(tmp_path / "c.pt", SimpleCNN())


# --- what History says ---------------------------------------------------------------------


@pytest.mark.parametrize(("has_bf16", "dtype"), [(True, "bfloat16"), (False, "float32")])
def test_history_says_which_dtype_precision_auto_picked(monkeypatch, has_bf16, dtype):
    monkeypatch.setattr(settings, "cpu_has_bf16", lambda: has_bf16)
    history = fit(SimpleCNN(), _loader(16), epochs=1, device="cpu", precision="auto",
                  progress=False)  # fmt: skip
    assert history.precision == [dtype] and f"precision: {dtype}" in str(history)


def test_history_lr_is_the_largest_groups_rate():
    model = SmallResNet(width=4)
    groups = [{"params": model.head.parameters(), "lr": 1e-2},
              {"params": [p for n, p in model.named_parameters() if not n.startswith("head")],
               "lr": 1e-4}]  # fmt: skip
    history = fit(model, _loader(16), epochs=1, device="cpu", progress=False,
                  optimizer=torch.optim.SGD(groups, lr=1e-4))  # fmt: skip
    assert history.lr == [1e-2]


def test_early_stopping_and_lookahead_state_land_where_they_are_kept(tmp_path):
    """EarlyStopping keeps its best weights on the CPU on purpose (GPU memory stays free)."""
    path = tmp_path / "c.pt"
    stopper = EarlyStopping("val_acc", patience=None, restore_best=True)
    _run(path, 1, stopper, resume=False)
    again = EarlyStopping("val_acc", patience=None, restore_best=True)
    _run(path, 2, again)
    assert all(t.device.type == "cpu" for t in again.best_weights.values())

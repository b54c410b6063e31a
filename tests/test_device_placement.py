"""Restored state lands on the model's device. Without a GPU here, the ``meta`` device
stands in for "not where the checkpoint was read": a checkpoint written on the CPU is
restored into a model on ``meta`` and a resumed step is taken; any piece of state left on
the CPU (an optimizer buffer, Lookahead's slow weights, a scheduler's tensor) meets a meta
tensor and fails the step. The same for explain's maps and Predictor's inputs."""

from __future__ import annotations

import re

import pytest
import torch
from torch import nn

from cnnlab import seed_everything
from cnnlab.callbacks import (
    EarlyStopping,
    FitState,
    GradualUnfreezing,
    Lookahead,
    ModelCheckpoint,
)
from cnnlab.data import DecodedImages, TensorLoader
from cnnlab.engine import fit
from cnnlab.models import SmallResNet


def _loader():
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (32, 3, 32, 32), generator=g, dtype=torch.uint8)
    data = DecodedImages(images, torch.randint(0, 10, (32,), generator=g), list("0123456789"))
    return TensorLoader(data, 8, shuffle=True, seed=0)


def _callbacks(model, path):
    return [ModelCheckpoint(path, resume=True, overwrite=True), Lookahead(every=1),
            EarlyStopping("train_loss", patience=None, restore_best=True),
            GradualUnfreezing(model, every=1)]  # fmt: skip


def _optimizer(model):
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    return optimizer, torch.optim.lr_scheduler.OneCycleLR(optimizer, 1e-2, total_steps=64)


def _tensors(obj):
    if isinstance(obj, torch.Tensor):
        yield obj
    elif isinstance(obj, dict):
        for value in obj.values():
            yield from _tensors(value)
    elif isinstance(obj, (list, tuple)):
        for value in obj:
            yield from _tensors(value)


@pytest.mark.filterwarnings("ignore:for .*copying from a non-meta parameter")
def test_a_resumed_step_finds_every_restored_piece_on_the_models_device(tmp_path):
    path = tmp_path / "last.pt"
    seed_everything(0)
    model = SmallResNet(width=4)
    optimizer, scheduler = _optimizer(model)
    fit(model, _loader(), epochs=2, device="cpu", progress=False, optimizer=optimizer,
        scheduler=scheduler, scheduler_interval="step", callbacks=_callbacks(model, path))  # fmt: skip

    device = torch.device("meta")  # "the GPU": not where torch.load put the tensors
    model = SmallResNet(width=4).to(device)
    optimizer, scheduler = _optimizer(model)
    callbacks = _callbacks(model, path)
    state = FitState(model, optimizer, nn.CrossEntropyLoss(), device, _loader(), None, 4,
                     scheduler=scheduler, callbacks=callbacks)  # fmt: skip
    for callback in callbacks:
        callback.on_resume(state)
    for callback in callbacks:
        callback.on_fit_start(state)
    assert state.epoch == 2
    for callback in callbacks:
        callback.on_epoch_start(state)
    loss = state.loss_fn(model(torch.zeros(8, 3, 32, 32, device=device)),
                         torch.zeros(8, dtype=torch.long, device=device))  # fmt: skip
    loss.backward()
    optimizer.step()  # an optimizer buffer on the CPU would fail here
    scheduler.step()
    state.step += 1
    for callback in callbacks:
        callback.on_step_end(state)  # Lookahead's slow weights on the CPU would fail here
    # (Adam's step counts are 0-d CPU tensors by PyTorch's design: not device state)
    buffers = [t for t in _tensors(optimizer.state_dict()["state"]) if t.dim() > 0]
    kept_on_device = [*buffers, *_tensors(callbacks[1].slow)]
    assert kept_on_device and {t.device.type for t in kept_on_device} == {"meta"}
    # EarlyStopping keeps its best weights on the CPU by design (GPU memory stays free)
    assert {t.device.type for t in _tensors(callbacks[2].best_weights)} == {"cpu"}


@pytest.mark.parametrize("method", ["saliency", "smoothgrad", "grad_cam", "occlusion"])
def test_explanations_are_computed_on_the_models_device(method):
    from cnnlab import explain

    model = SmallResNet(width=4).to("meta").eval()
    images = torch.rand(2, 3, 32, 32)  # on the CPU, as a data set gives them
    kwargs = {"grad_cam": {"layer": "layer3"}, "smoothgrad": {"samples": 2},
              "occlusion": {"window": 8, "stride": 8}}.get(method, {})  # fmt: skip
    try:
        maps = getattr(explain, method)(model, images, target=1, **kwargs)
    except (NotImplementedError, RuntimeError) as error:
        # reading a meta tensor's values is where the line ends; a device mismatch is not
        assert re.search("cannot be called on meta|Cannot copy out of meta", str(error)), error
        return
    assert maps.device.type in ("meta", "cpu") and maps.shape[-2:] == (32, 32)


def test_the_predictor_moves_inputs_to_its_copy_of_the_model():
    from cnnlab.inference import Predictor, Preprocessing

    model = SmallResNet(width=4)
    seen = []
    predictor = Predictor(model, list("0123456789"), Preprocessing(32), device="meta")
    predictor.model.register_forward_pre_hook(lambda m, args: seen.append(args[0].device))
    assert next(model.parameters()).device.type == "cpu"  # the caller's model stays put
    with pytest.raises(NotImplementedError, match="meta"):  # the probabilities' read-back
        predictor.predict_batch(torch.rand(1, 3, 32, 32))
    assert seen == [torch.device("meta")]


@pytest.mark.parametrize("saved_dtype", [torch.float32, torch.float16])
def test_a_loaded_model_file_lands_whole_on_the_predictors_device(tmp_path, saved_dtype):
    """Predictor.load builds the network on meta and puts the file's tensors in (no copy
    into fresh parameters): every weight and BatchNorm statistic must still end up on the
    device asked for, in float32, even from a file saved after model.half() on a T4."""
    from cnnlab.inference import Predictor, Preprocessing

    model = SmallResNet(width=4).to(saved_dtype)
    path = tmp_path / "m.pt"
    Predictor(model, list("0123456789"), Preprocessing(32)).save(
        path, {"name": "SmallResNet", "kwargs": {"width": 4}}
    )
    if saved_dtype is torch.float16:  # Predictor saves its float32 copy: write half weights
        state = torch.load(path, weights_only=True)
        state["model"] = {
            k: v.half() if v.is_floating_point() else v for k, v in state["model"].items()
        }
        torch.save(state, path)
    loaded = Predictor.load(path, device="meta")
    tensors = [*loaded.model.parameters(), *loaded.model.buffers()]
    assert {t.device.type for t in tensors} == {"meta"}
    assert {t.dtype for t in tensors if t.is_floating_point()} == {torch.float32}
    assert not any(p.requires_grad for p in loaded.model.parameters())

"""Export, quantization, prediction and the web API take a model as training left it (on a
GPU, channels_last, in train mode, partly frozen) and leave it exactly so: they work on a
CPU copy. Without a GPU here, "left where it was" is checked by refusing any move of the
caller's model (``_apply`` is what ``.to()``, ``.cuda()`` and ``.cpu()`` call)."""

from __future__ import annotations

import io

import pytest
import torch
from PIL import Image

from cnnlab import seed_everything
from cnnlab.data import CIFAR10_CLASSES
from cnnlab.export import export_onnx, export_torchscript
from cnnlab.inference import Predictor, Preprocessing
from cnnlab.models import SimpleCNN, inference_copy
from cnnlab.quantize import quantize_onnx


def _as_training_left_it() -> SimpleCNN:
    seed_everything(0)
    model = SimpleCNN().to(memory_format=torch.channels_last).train()
    model.features.requires_grad_(False)  # a frozen backbone
    return model


def _fingerprint(model):
    return (
        [(n, p.device, p.dtype, p.requires_grad, p.data_ptr(),
          p.is_contiguous(memory_format=torch.channels_last)) for n, p in model.named_parameters()],
        [m.training for m in model.modules()],
        {k: v.clone() for k, v in model.state_dict().items()},
    )  # fmt: skip


def _same(before, after):
    params, modes, state = before
    assert params == after[0] and modes == after[1]
    assert all(torch.equal(v, after[2][k]) for k, v in state.items())


@pytest.fixture
def model(monkeypatch):
    model = _as_training_left_it()
    watched = {id(m) for m in model.modules()}
    original = torch.nn.Module._apply

    def refuse(self, *args, **kwargs):  # .to(), .cpu(), .float(), .half() all come here
        if id(self) in watched:
            raise AssertionError("the caller's model was moved or converted")
        return original(self, *args, **kwargs)

    monkeypatch.setattr(torch.nn.Module, "_apply", refuse)
    return model


def _reference(images):
    return inference_copy(_as_training_left_it())(images)


def test_onnx_and_torchscript_exports_leave_the_model_as_it_was(model, tmp_path):
    images = torch.randn(4, 3, 32, 32).contiguous(memory_format=torch.channels_last)
    before = _fingerprint(model)
    onnx_report = export_onnx(model, tmp_path / "m.onnx", images)
    ts_report = export_torchscript(model, tmp_path / "m.ts", images)
    _same(before, _fingerprint(model))
    assert onnx_report.max_abs_diff <= 1e-4 and ts_report.max_abs_diff <= 1e-4
    calibration = torch.randn(16, 3, 32, 32)
    report = quantize_onnx(tmp_path / "m.onnx", tmp_path / "m.int8.onnx", calibration, "dynamic")
    assert report.compression > 2
    _same(before, _fingerprint(model))


def test_predictor_and_the_web_api_leave_the_model_as_it_was(model):
    from fastapi.testclient import TestClient

    from cnnlab.serve import create_app

    before = _fingerprint(model)
    predictor = Predictor(model, CIFAR10_CLASSES, Preprocessing(32))
    picture = Image.new("RGB", (40, 30), (200, 40, 90))
    top = predictor.predict(picture, k=3)
    expected = _reference(predictor.prepare(picture).unsqueeze(0)).softmax(1)[0]
    assert top[0][1] == pytest.approx(float(expected.max()), abs=1e-5)
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    response = TestClient(create_app(predictor)).post(
        "/predict", files={"file": ("p.png", buffer.getvalue(), "image/png")})  # fmt: skip
    assert response.status_code == 200
    assert [p["label"] for p in response.json()["predictions"]] == [
        n for n, _ in predictor.predict(picture)
    ]
    _same(before, _fingerprint(model))
    assert model.training and not predictor.model.training


def test_a_float64_model_is_exported_as_float32_and_stays_float64(tmp_path):
    model = SimpleCNN().double()
    report = export_onnx(model, tmp_path / "m.onnx", torch.randn(2, 3, 32, 32, dtype=torch.float64))
    assert report.max_abs_diff <= 1e-4
    assert next(model.parameters()).dtype == torch.float64

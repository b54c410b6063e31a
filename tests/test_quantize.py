"""int8 quantization of an exported model: ~4x smaller, same answers, accuracy measured."""

from __future__ import annotations

import pytest
import torch

from cnnlab import seed_everything
from cnnlab.data import make_loader
from cnnlab.engine import fit
from cnnlab.errors import CnnlabError
from cnnlab.export import export_onnx
from cnnlab.models import SmallResNet
from cnnlab.quantize import onnx_accuracy, quantize_onnx


@pytest.fixture(scope="module")
def exported(standin_train, standin_test, tmp_path_factory):
    """A SmallResNet that has learned the stand-in data, exported to ONNX."""
    seed_everything(0)
    model = SmallResNet(width=8)
    train = make_loader(standin_train, 64, shuffle=True, seed=0, num_workers=0)
    test = make_loader(standin_test, 250, num_workers=0)
    history = fit(model, train, test, epochs=2, lr=3e-3, progress=False, device="cpu")
    assert history.val_acc[-1] > 0.4  # a model that learned, or the comparison means little
    calibration = torch.stack([standin_train[i][0] for i in range(128)])
    path = tmp_path_factory.mktemp("quant") / "model.onnx"
    export_onnx(model.eval(), path, calibration[:8])
    return path, calibration, test, history.val_acc[-1]


@pytest.mark.parametrize("mode", ["static", "dynamic"])
def test_quantized_model_is_smaller_and_as_accurate(exported, mode):
    path, calibration, test, float_acc = exported
    report = quantize_onnx(path, path.with_suffix(f".{mode}.onnx"), calibration, mode=mode,
                           eval_loader=test)  # fmt: skip
    assert report.compression > 3.0
    assert report.size_after == report.path.stat().st_size
    assert report.accuracy_before == pytest.approx(float_acc, abs=1e-6)
    assert report.accuracy_after > report.accuracy_before - 0.05
    assert report.agreement >= 0.9
    assert f"{mode} int8" in str(report) and "accuracy" in str(report)
    assert onnx_accuracy(report.path, test) == pytest.approx(report.accuracy_after)


def test_bad_calibration_and_mode_say_what_to_do(exported, tmp_path):
    path, calibration, _, _ = exported
    with pytest.raises(CnnlabError, match=r"stack a few hundred preprocessed training images"):
        quantize_onnx(path, tmp_path / "q.onnx", calibration[0])
    with pytest.raises(ValueError, match="'dynamic' or 'static'"):
        quantize_onnx(path, tmp_path / "q.onnx", calibration, mode="int4")  # type: ignore[arg-type]
    with pytest.raises(FileNotFoundError, match="export one first"):
        quantize_onnx(tmp_path / "missing.onnx", tmp_path / "q.onnx", calibration)


def test_agreement_is_measured_on_images_the_calibration_never_saw(exported):
    from cnnlab.quantize import onnx_logits

    path, calibration, test, _ = exported
    report = quantize_onnx(path, path.with_suffix(".held.onnx"), calibration, eval_loader=test)
    held_out = torch.cat([images for images, _ in test])[: len(calibration)]
    before, after = onnx_logits(path, held_out), onnx_logits(report.path, held_out)
    assert report.agreement == float((before.argmax(1) == after.argmax(1)).mean())
    assert "of held-out images" in str(report)
    alone = quantize_onnx(path, path.with_suffix(".cal.onnx"), calibration)
    assert "of the calibration images" in str(alone)  # said, when there is nothing else

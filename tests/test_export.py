"""Exports match the eager model within 1e-4 on real inputs, and a mismatch is caught."""

from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn

from cnnlab import seed_everything
from cnnlab.export import (
    ExportParityError,
    check_parity,
    export_onnx,
    export_torchscript,
    onnx_session,
)
from cnnlab.models import SimpleCNN


@pytest.fixture(scope="module")
def trained(standin_train):
    """A SimpleCNN after a few steps (not fresh weights) and a batch of real stand-in images."""
    from cnnlab.data import make_loader
    from cnnlab.engine import fit

    seed_everything(0)
    model = SimpleCNN()
    loader = make_loader(standin_train, 64, shuffle=True, seed=0, num_workers=0)
    fit(model, [next(iter(loader))] * 3, epochs=1, device="cpu", progress=False)
    images, _ = next(iter(loader))
    return model.eval(), images[:8]


def test_torchscript_export_matches_eager(trained, tmp_path):
    model, images = trained
    report = export_torchscript(model, tmp_path / "m.ts", images)
    assert report.max_abs_diff <= 1e-4 and report.size_bytes > 1e6
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # TorchScript is deprecated upstream
        loaded = torch.jit.load(str(tmp_path / "m.ts"))
    assert (loaded(images) - model(images)).abs().max() <= 1e-4


def test_onnx_export_matches_eager_at_any_batch_size(trained, tmp_path):
    model, images = trained
    report = export_onnx(model, tmp_path / "m.onnx", images)
    assert report.max_abs_diff <= 1e-4 and report.inputs_checked == 9 + 9  # and a new batch
    assert report.opset is not None and report.opset >= 17
    session = onnx_session(tmp_path / "m.onnx")
    out = session.run(None, {"images": images[:3].numpy()})[0]
    assert out.shape == (3, 10)
    assert "onnx" in str(report) and "opset" in str(report)


def test_onnx_export_is_one_self_contained_file(trained, tmp_path):
    model, images = trained
    report = export_onnx(model, tmp_path / "export" / "m.onnx", images, dynamic_batch=False)
    assert [p.name for p in (tmp_path / "export").iterdir()] == ["m.onnx"]
    assert report.size_bytes > 0.9 * 4 * sum(p.numel() for p in model.parameters())
    moved = tmp_path / "m.onnx"
    (tmp_path / "export" / "m.onnx").rename(moved)
    assert onnx_session(moved).run(None, {"images": images.numpy()})[0].shape == (8, 10)


def test_a_mismatch_is_caught():
    net = nn.Linear(3, 2).eval()
    with pytest.raises(ExportParityError, match="differs from the eager model"):
        check_parity(net, lambda x: net(x) + 1e-2, torch.randn(4, 3))


class Branchy(nn.Module):
    """Data-dependent control flow: tracing freezes the branch the traced batch took."""

    def __init__(self):
        super().__init__()
        self.head = nn.Linear(3 * 4 * 4, 2)

    def forward(self, x):
        out = self.head(x.flatten(1))
        return out if x.mean() > 0.5 else -out


def test_torchscript_parity_is_checked_on_a_batch_it_was_not_traced_with(tmp_path):
    traced_on = torch.ones(4, 3, 4, 4)  # mean 1: the first branch, frozen by tracing
    with pytest.raises(ExportParityError, match="a new batch"):
        export_torchscript(Branchy().eval(), tmp_path / "b.ts", traced_on)


def test_parity_allows_float_error_in_proportion_to_the_outputs():
    big = nn.Linear(3, 2).eval()
    with torch.no_grad():
        big.weight.mul_(1e5)  # logits around 1e5: float error of 1e-6 relative is 0.1
    assert check_parity(big, lambda x: big(x) * (1 + 1e-6), torch.randn(4, 3)) > 1e-4
    with pytest.raises(ExportParityError):
        check_parity(big, lambda x: big(x) * (1 + 1e-3), torch.randn(4, 3))

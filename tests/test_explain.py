"""Explanations: on a network built so that only one region of the image can matter, every
method puts its mass there; a trained model's maps change when its weights are randomised
(Adebayo et al.'s sanity check); hooks never outlive a call, not even a failed one; and the
model's modes, requires_grad flags and gradients are left as they were."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from cnnlab import seed_everything
from cnnlab.engine import fit
from cnnlab.explain import find_layer, grad_cam, last_conv_layer, occlusion, saliency, smoothgrad
from cnnlab.models import SimpleCNN

REGION = (slice(4, 14), slice(18, 28))  # rows, columns: the only place that counts


class RegionNet(nn.Module):
    """The decision depends on one region: the input is masked to it before the first
    convolution (no bias, so nothing outside the region activates)."""

    def __init__(self) -> None:
        super().__init__()
        mask = torch.zeros(1, 1, 32, 32)
        mask[..., REGION[0], REGION[1]] = 1
        self.register_buffer("mask", mask)
        self.conv = nn.Conv2d(3, 8, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(8)
        self.dropout = nn.Dropout(0.5)
        self.head = nn.Linear(8, 2)

    def forward(self, x):
        a = torch.relu(self.conv(x * self.mask))
        return self.head(self.dropout(self.bn(a).mean(dim=(2, 3)) + a.mean(dim=(2, 3))))


def _inside(maps: torch.Tensor, margin: int = 1) -> float:
    """The share of each map's mass inside the region (grown by the kernel's reach)."""
    rows = slice(REGION[0].start - margin, REGION[0].stop + margin)
    cols = slice(REGION[1].start - margin, REGION[1].stop + margin)
    return float((maps[:, rows, cols].sum((1, 2)) / maps.sum((1, 2))).min())


@pytest.fixture
def region_net():
    seed_everything(0)
    return RegionNet()


METHODS = {
    "saliency": lambda m, x: saliency(m, x),
    "smoothgrad": lambda m, x: smoothgrad(m, x, samples=8),
    "grad_cam": lambda m, x: grad_cam(m, x, "conv"),
    "occlusion": lambda m, x: occlusion(m, x, window=4, stride=2),
}


@pytest.mark.parametrize("method", list(METHODS))
def test_the_map_falls_on_the_region_the_decision_depends_on(region_net, method):
    x = torch.rand(4, 3, 32, 32)
    maps = METHODS[method](region_net, x)
    assert maps.shape == (4, 32, 32) and maps.min() >= 0 and maps.max() <= 1
    margin = 4 if method == "occlusion" else 1  # a 4-px patch reaches into the region early
    assert _inside(maps, margin) > 0.9, method


def _hooks(model):
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks)
               for m in model.modules())  # fmt: skip


@pytest.mark.parametrize("method", list(METHODS))
def test_modes_flags_gradients_and_hooks_are_left_as_found(region_net, method):
    region_net.train()
    region_net.bn.eval()  # a frozen BatchNorm inside a training model
    region_net.conv.weight.requires_grad_(False)
    modes = [m.training for m in region_net.modules()]
    METHODS[method](region_net, torch.rand(2, 3, 32, 32))
    assert [m.training for m in region_net.modules()] == modes
    assert not region_net.conv.weight.requires_grad and region_net.head.weight.requires_grad
    assert all(p.grad is None for p in region_net.parameters())
    assert _hooks(region_net) == 0


def test_hooks_are_removed_when_the_call_fails(region_net):
    with pytest.raises(ValueError, match=r"target must be a class index in \[0, 2\)"):
        grad_cam(region_net, torch.rand(1, 3, 32, 32), "conv", target=5)
    assert _hooks(region_net) == 0
    with pytest.raises(ValueError, match="has no layer 'layer4'.*convolutional layers are"):
        grad_cam(region_net, torch.rand(1, 3, 32, 32), "layer4")


def test_randomised_weights_change_a_trained_models_map(tiny_loaders):
    """Adebayo et al. (2018): a map that survives randomising the weights does not explain
    the model. Grad-CAM of a trained SimpleCNN must change when its weights are redrawn."""
    seed_everything(0)
    model = SimpleCNN()
    fit(model, tiny_loaders[0], epochs=2, lr=2e-3, device="cpu", progress=False)
    x = next(iter(tiny_loaders[1]))[0][:8]
    layer = last_conv_layer(model)
    trained = grad_cam(model, x, layer)
    seed_everything(1)
    randomised = SimpleCNN()
    redrawn = grad_cam(randomised, x, layer, target=model(x).argmax(1))
    same = grad_cam(model, x, layer)
    assert torch.equal(trained, same)  # deterministic: the difference below is the weights'
    correlation = torch.corrcoef(torch.stack([trained.flatten(), redrawn.flatten()]))[0, 1]
    assert (trained - redrawn).abs().mean() > 0.1 and correlation < 0.7, float(correlation)


def test_channels_last_models_and_layers_given_as_modules(region_net):
    x = torch.rand(2, 3, 32, 32)
    plain = grad_cam(region_net, x, region_net.conv)
    region_net.to(memory_format=torch.channels_last)
    last = grad_cam(region_net, x.contiguous(memory_format=torch.channels_last), "conv")
    assert torch.allclose(plain, last, atol=1e-5)
    with pytest.raises(ValueError, match="is not a module of this"):
        find_layer(region_net, nn.Conv2d(3, 3, 1))


class LooksAtTheCorner(nn.Module):
    """Class 0's score is the bottom-right pixel's value: only that pixel matters."""

    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(torch.ones(1))

    def forward(self, x):
        corner = x[:, :, -1, -1].mean(1, keepdim=True) * self.scale
        return torch.cat([corner, torch.zeros_like(corner)], 1)


def test_occlusion_covers_the_right_and_bottom_borders():
    """Notebook 09's window 6, stride 3 on 32 px: (32 - 6) % 3 != 0, so the windows that
    start every 3 pixels stop at 29; the last row and column need a window of their own."""
    images = torch.ones(1, 3, 32, 32)
    heat = occlusion(LooksAtTheCorner(), images, target=0, window=6, stride=3)
    assert heat[0, -1, -1] == 1.0  # the pixel that matters is found
    assert heat[0, :20, :20].max() == 0.0  # and nothing far from it

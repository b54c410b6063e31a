"""What the network looks at: saliency maps, SmoothGrad, Grad-CAM and occlusion.

Each method answers "which pixels mattered for this prediction?" in its own way, and
returns one map per image, ``(N, H, W)`` at the input's resolution, scaled to [0, 1]:

- :func:`saliency` (Simonyan et al., 2014): the gradient of the class score with respect to
  each input pixel. Sharp, noisy, cheap: one backward pass.
- :func:`smoothgrad` (Smilkov et al., 2017): saliency averaged over noisy copies of the
  image; less noise, ``samples`` times the cost.
- :func:`grad_cam` (Selvaraju et al., 2017): the feature maps of one convolutional layer,
  weighted by how much the class score depends on each, then upsampled. Coarse (the
  layer's resolution), class-specific, and the most used.
- :func:`occlusion` (Zeiler & Fergus, 2014): grey out a patch, see how much the class
  probability changes; repeat across the image. No gradients, many forward passes.

Every function works on any device (CPU, CUDA, MPS) and on channels_last models, removes
its hooks afterwards even when something raises, and leaves the model's mode and its
parameters' gradients as it found them (gradients are taken with ``torch.autograd.grad``,
so no ``.grad`` is written).

Example:
    >>> model = SimpleCNN().eval()
    >>> maps = grad_cam(model, torch.rand(2, 3, 32, 32), "features.6")
    >>> tuple(maps.shape), bool(maps.min() >= 0), bool(maps.max() <= 1)
    ((2, 32, 32), True, True)
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn
from torch.nn import functional as F


def find_layer(model: nn.Module, layer: str | nn.Module) -> nn.Module:
    """The module called ``layer`` in ``model`` (a dotted name from ``named_modules()``,
    such as ``"layer4"`` or ``"features.6"``), or ``layer`` itself if it is a module of it.

    Example:
        >>> find_layer(SimpleCNN(), "features.6")
        Conv2d(64, 128, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1))
    """
    modules = dict(model.named_modules())
    if isinstance(layer, nn.Module):
        if not any(m is layer for m in modules.values()):
            raise ValueError(f"{type(layer).__name__} is not a module of this "
                             f"{type(model).__name__}")  # fmt: skip
        return layer
    if layer not in modules:
        convs = [name for name, m in modules.items() if isinstance(m, nn.Conv2d)]
        raise ValueError(f"{type(model).__name__} has no layer {layer!r}; its convolutional "
                         f"layers are {convs[-6:]} (the last ones work best for Grad-CAM)")  # fmt: skip
    return modules[layer]


def last_conv_layer(model: nn.Module) -> str:
    """The name of the last ``nn.Conv2d`` in ``model``: a good default for Grad-CAM.

    Example:
        >>> last_conv_layer(SimpleCNN())
        'features.6'
    """
    names = [name for name, m in model.named_modules() if isinstance(m, nn.Conv2d)]
    if not names:
        raise ValueError(f"{type(model).__name__} has no nn.Conv2d layer")
    return names[-1]


@contextlib.contextmanager
def _evaluating(model: nn.Module) -> Iterator[None]:
    """Eval mode (dropout off, BatchNorm's running statistics) and gradients on, put back
    as they were afterwards."""
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        with torch.enable_grad():
            yield
    finally:
        for module, mode in modes:
            module.training = mode


def _prepare(model: nn.Module, images: torch.Tensor) -> torch.Tensor:
    if images.dim() == 3:
        images = images.unsqueeze(0)
    device = next(model.parameters()).device
    x = images.detach().to(device=device, dtype=torch.float32)
    return x.requires_grad_(True)


def _targets(logits: torch.Tensor, target: int | torch.Tensor | None) -> torch.Tensor:
    n, classes = logits.shape
    if target is None:
        return logits.argmax(dim=1)
    target = torch.as_tensor(target).long().expand(n)  # checked where it was given
    if int(target.min()) < 0 or int(target.max()) >= classes:
        raise ValueError(f"target must be a class index in [0, {classes}), got {target.tolist()}")
    return target.to(logits.device)


def _normalise(maps: torch.Tensor) -> torch.Tensor:
    """Scale each map to [0, 1] (a map that is all zero stays zero)."""
    flat = maps.flatten(1)
    low, high = flat.min(dim=1).values, flat.max(dim=1).values
    scale = torch.where(high > low, high - low, torch.ones_like(high))
    return ((flat - low[:, None]) / scale[:, None]).view_as(maps).clamp(0, 1)


def saliency(model: nn.Module, images: torch.Tensor,
             target: int | torch.Tensor | None = None) -> torch.Tensor:  # fmt: skip
    """Vanilla gradient saliency: ``|d score / d pixel|``, the largest over the colour
    channels, per image scaled to [0, 1]. ``target`` is the class to explain (default:
    the predicted one), one index or one per image.

    Example:
        >>> saliency(SimpleCNN(), torch.rand(3, 32, 32)).shape
        torch.Size([1, 32, 32])
    """
    with _evaluating(model):
        x = _prepare(model, images)
        logits = model(x)
        chosen = _targets(logits, target)
        score = logits.gather(1, chosen[:, None]).sum()
        (grad,) = torch.autograd.grad(score, x)
    return _normalise(grad.abs().amax(dim=1)).detach()


def smoothgrad(model: nn.Module, images: torch.Tensor, target: int | torch.Tensor | None = None,
               samples: int = 25, noise: float = 0.15, seed: int = 0) -> torch.Tensor:  # fmt: skip
    """SmoothGrad: saliency averaged over ``samples`` copies of each image with Gaussian
    noise of ``noise`` times the image's value range added (seeded: the same map twice).

    Example:
        >>> smoothgrad(SimpleCNN(), torch.rand(1, 3, 32, 32), samples=4).shape
        torch.Size([1, 32, 32])
    """
    x = images if images.dim() == 4 else images.unsqueeze(0)
    with _evaluating(model):
        x = x.detach().to(next(model.parameters()).device, torch.float32)
        chosen = _targets(model(x), target)
        spread = (x.flatten(1).amax(1) - x.flatten(1).amin(1)).view(-1, 1, 1, 1) * noise
        generator = torch.Generator(device="cpu").manual_seed(seed)
        total = torch.zeros(x.shape[0], *x.shape[2:], device=x.device)
        for _ in range(samples):
            jitter = torch.randn(x.shape, generator=generator).to(x.device) * spread
            noisy = (x + jitter).requires_grad_(True)
            logits = model(noisy)
            (grad,) = torch.autograd.grad(logits.gather(1, chosen[:, None]).sum(), noisy)
            total += grad.abs().amax(dim=1)
    return _normalise(total / samples).detach()


def grad_cam(model: nn.Module, images: torch.Tensor, layer: str | nn.Module,
             target: int | torch.Tensor | None = None) -> torch.Tensor:  # fmt: skip
    """Grad-CAM: ``relu(sum_k w_k A_k)`` for the activations ``A_k`` of ``layer``, with
    ``w_k`` the spatial mean of the class score's gradient on ``A_k``; upsampled
    (bilinear) to the input's size and scaled to [0, 1] per image.

    ``layer`` is a module of ``model`` or its name (``"layer4"`` for a torchvision ResNet;
    :func:`last_conv_layer` finds a default). The hook on it is removed afterwards, also
    when something raises.

    Example:
        >>> grad_cam(SimpleCNN(), torch.rand(2, 3, 32, 32), "features.6", target=3).shape
        torch.Size([2, 32, 32])
    """
    module = find_layer(model, layer)
    captured: list[torch.Tensor] = []

    def keep(_module, _inputs, output):
        captured.append(output)

    handle = module.register_forward_hook(keep)
    try:
        with _evaluating(model):
            x = _prepare(model, images)
            logits = model(x)
            if not captured:
                raise ValueError(f"layer {layer!r} was not used in the forward pass")
            activations = captured[-1]
            if activations.dim() != 4:
                raise ValueError(f"layer {layer!r} gives {tuple(activations.shape)}; Grad-CAM "
                                 "needs a convolutional layer's (N, C, H, W) output")  # fmt: skip
            chosen = _targets(logits, target)
            score = logits.gather(1, chosen[:, None]).sum()
            (grads,) = torch.autograd.grad(score, activations)
    finally:
        handle.remove()
    weights = grads.mean(dim=(2, 3), keepdim=True)
    cam = F.relu((weights * activations).sum(dim=1, keepdim=True))
    cam = F.interpolate(cam, size=x.shape[-2:], mode="bilinear", align_corners=False)
    return _normalise(cam[:, 0]).detach()


@torch.no_grad()
def _starts(size: int, window: int, stride: int) -> list[int]:
    """Where a window slides along an axis: every ``stride`` pixels, plus a last position
    flush with the far edge, so that the right and bottom borders are covered too."""
    last = max(size - window, 0)
    starts = list(range(0, last + 1, stride))
    return starts if starts[-1] == last else [*starts, last]


def occlusion(model: nn.Module, images: torch.Tensor, target: int | torch.Tensor | None = None,
              window: int = 8, stride: int = 4, baseline: float = 0.0,
              batch_size: int = 64) -> torch.Tensor:  # fmt: skip
    """Occlusion sensitivity: how much the target class's probability changes when a
    ``window`` x ``window`` patch is set to ``baseline`` (0: the mean colour, for
    normalised images), the patch sliding by ``stride``; each pixel gets the mean absolute
    change of the patches covering it, scaled to [0, 1]. (Absolute: a patch whose removal
    *raises* the probability held evidence against the class; the model looked there too.)

    Example:
        >>> occlusion(SimpleCNN(), torch.rand(1, 3, 32, 32), window=8, stride=8).shape
        torch.Size([1, 32, 32])
    """
    x = images if images.dim() == 4 else images.unsqueeze(0)
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        x = x.to(next(model.parameters()).device, torch.float32)
        n, _, h, w = x.shape
        probs = model(x).softmax(dim=1)
        chosen = _targets(probs, target)
        reference = probs.gather(1, chosen[:, None])[:, 0]
        drop = torch.zeros(n, h, w, device=x.device)
        count = torch.zeros(h, w, device=x.device)
        spots = [(top, left) for top in _starts(h, window, stride)
                 for left in _starts(w, window, stride)]  # fmt: skip
        for i in range(n):
            for start in range(0, len(spots), batch_size):
                chunk = spots[start : start + batch_size]
                covered = x[i].expand(len(chunk), -1, -1, -1).clone()
                for j, (top, left) in enumerate(chunk):
                    covered[j, :, top : top + window, left : left + window] = baseline
                p = model(covered).softmax(dim=1)[:, chosen[i]]
                for j, (top, left) in enumerate(chunk):
                    drop[i, top : top + window, left : left + window] += (reference[i] - p[j]).abs()
                    if i == 0:
                        count[top : top + window, left : left + window] += 1
    finally:
        for module, mode in modes:
            module.training = mode
    return _normalise(drop / count.clamp(min=1))


__all__ = ["find_layer", "grad_cam", "last_conv_layer", "occlusion", "saliency", "smoothgrad"]

"""Checked exercises of notebook 09 (what the network looks at): saliency by hand, and
the layer Grad-CAM reads."""

from __future__ import annotations

import torch
from torch import nn

from .base import Exercise, LearnerError, Result, call, wrong


def _model() -> nn.Module:
    from ..models import SimpleCNN  # noqa: PLC0415

    torch.manual_seed(0)
    return SimpleCNN(dropout=0.5)


def _reference(model: nn.Module, x: torch.Tensor, target: int, how: str) -> torch.Tensor:
    x = x.clone().requires_grad_(True)
    model.eval()
    model(x)[:, target].sum().backward()
    grad = x.grad
    if how == "signed":
        return grad.amax(dim=1)
    if how == "sum":
        return grad.abs().sum(dim=1)
    return grad.abs().amax(dim=1)


def _scaled(m: torch.Tensor) -> torch.Tensor:
    flat = m.flatten(1)
    low, high = flat.min(1, keepdim=True)[0], flat.max(1, keepdim=True)[0]
    return ((flat - low) / (high - low + 1e-12)).view_as(m)


def _check_saliency(answer) -> Result:
    if not callable(answer):
        return wrong("answer with your function itself (saliency_map), not its result")
    model, x = _model(), torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    try:
        out = call(answer, model, x, 3, what="your saliency_map")
    except LearnerError as error:
        if "does not require grad" in str(error) or "NoneType" in str(error):
            return wrong("there is no gradient on the image: ask for one first, "
                         "x = x.clone().requires_grad_(True), then backward from the score")  # fmt: skip
        raise
    if not isinstance(out, torch.Tensor):
        return wrong(f"saliency_map returned a {type(out).__name__}; return a tensor (N, H, W)")
    out = out.detach().float()
    if tuple(out.shape) == (2, 3, 32, 32):
        return wrong("one map per image, not per channel: take the largest |gradient| over the "
                     "colour channels, .abs().amax(dim=1), giving (N, H, W)")  # fmt: skip
    if tuple(out.shape) != (2, 32, 32):
        return wrong(f"the result is {tuple(out.shape)}; expected one 32 x 32 map per image")
    for how, message in (("signed", "without abs(): a pixel that lowers the score matters as "
                                    "much as one that raises it; take .abs() first"),
                         ("sum", "that sums over the channels; the course's saliency takes the "
                                 "largest, .amax(dim=1)")):  # fmt: skip
        if torch.allclose(_scaled(out), _scaled(_reference(model, x, 3, how)), atol=1e-4):
            return wrong(message)
    if not torch.allclose(_scaled(out), _scaled(_reference(model, x, 3, "max")), atol=1e-4):
        model.train()
        if torch.allclose(_scaled(out), _scaled(_reference(model.train(), x, 3, "max")), atol=1e-3):
            return wrong("the model was in training mode (dropout on): call model.eval() first")
        return wrong("the map differs: the gradient of the class-3 logit with respect to the "
                     "input, .abs().amax(dim=1)")  # fmt: skip
    return Result(True, "|d score / d pixel|, largest over the channels: the same map as "
                        "cnnlab.explain.saliency, up to its scaling to [0, 1].")  # fmt: skip


def _check_layer(answer) -> Result:
    if not isinstance(answer, str):
        return wrong("answer with the layer's name as a string, as model.named_modules() "
                     "gives it, for example 'features.0'")  # fmt: skip
    model = _model()
    modules = dict(model.named_modules())
    if answer not in modules:
        names = [n for n, m in modules.items() if isinstance(m, nn.Conv2d)]
        return wrong(f"the model has no layer {answer!r}; its convolutions are {names}")
    convs = [n for n, m in modules.items() if isinstance(m, nn.Conv2d)]
    layer = modules[answer]
    if isinstance(layer, nn.Linear) or answer.startswith("classifier"):
        return wrong("a Linear layer has no height and width: Grad-CAM weights feature maps, "
                     "so it needs a convolution")  # fmt: skip
    if answer == convs[0]:
        return wrong("the first convolution sees edges and colours, not classes; Grad-CAM "
                     "reads the last one, whose maps are about the class")  # fmt: skip
    if answer in convs[:-1]:
        return wrong("an earlier convolution: finer maps, but less about the class. Grad-CAM "
                     "usually reads the last convolution")  # fmt: skip
    if answer != convs[-1]:
        return wrong(f"{answer!r} is not a convolution; Grad-CAM reads the last one")
    return Result(True, f"{answer}, the last convolution: the coarsest maps and the most about "
                        "the class (cnnlab.explain.last_conv_layer finds it).")  # fmt: skip


q1 = Exercise(
    "09", 1, "saliency by hand", _check_saliency,
    hint_text="model.eval(); x = x.clone().requires_grad_(True); model(x)[:, target].sum()"
    ".backward(); then x.grad.abs().amax(dim=1).",
    solution_code="""def saliency_map(model, x, target):
    model.eval()
    x = x.clone().requires_grad_(True)
    model(x)[:, target].sum().backward()
    return x.grad.abs().amax(dim=1)""",
)  # fmt: skip
q2 = Exercise(
    "09", 2, "the layer Grad-CAM reads", _check_layer,
    hint_text="Print [n for n, m in SimpleCNN().named_modules() if isinstance(m, nn.Conv2d)] "
    "and take the last one.",
    solution_code="""my_layer = "features.6"   # SimpleCNN's last nn.Conv2d""",
)  # fmt: skip
EXERCISES = [q1, q2]

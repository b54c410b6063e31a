"""Checked exercises of notebook 04 (fine-tuning): training mode with frozen BatchNorm,
and discriminative learning rates."""

from __future__ import annotations

import torch
from torch import nn
from torchvision.models import resnet18

from .base import Exercise, Result, call, wrong

_FROZEN = ("conv1", "bn1", "layer1", "layer2")
_RATES = {"fc": 1e-3, "layer4": 1e-4, "layer3": 1e-5}


def _half_frozen() -> nn.Module:
    """ResNet-18 (random weights) with its stem, layer1 and layer2 frozen."""
    model = resnet18(num_classes=5)
    for name in _FROZEN:
        getattr(model, name).requires_grad_(False)
    return model


def _group(name: str) -> str:
    return name.split(".")[0]


def _check_train_mode(answer) -> Result:
    if not callable(answer):
        return wrong("answer with your function itself (set_train_mode), not its result")
    model = _half_frozen().eval()
    call(answer, model, what="your set_train_mode")
    norms = {name: m for name, m in model.named_modules() if isinstance(m, nn.BatchNorm2d)}
    frozen = {n: m for n, m in norms.items() if _group(n) in _FROZEN}
    trained = {n: m for n, m in norms.items() if _group(n) not in _FROZEN}
    if all(m.training for m in norms.values()):
        return wrong("the frozen BatchNorm layers are in training mode: their weights are "
                     "frozen, but their running mean and variance still move with every batch, "
                     "and the pretrained statistics drift away. Put them in eval mode")  # fmt: skip
    if not model.layer4.training or not model.training:
        return wrong("the trainable layers are in eval mode too: call model.train() first, "
                     "then switch only the frozen BatchNorm layers to eval()")  # fmt: skip
    if not any(m.training for m in trained.values()):
        return wrong("every BatchNorm is in eval mode, also those in layers that train: only "
                     "the ones whose parameters are frozen should be")  # fmt: skip
    if any(m.training for m in frozen.values()) or not all(m.training for m in trained.values()):
        return wrong("some BatchNorm layers are in the wrong mode: eval() exactly for those "
                     "whose parameters do not require gradients")  # fmt: skip
    return Result(True, "training mode, with the frozen BatchNorm layers kept in eval mode. "
                        "fit does this for you (frozen_bn_eval=True).")  # fmt: skip


def _check_optimizer(answer) -> Result:
    if not callable(answer):
        return wrong("answer with your function itself (make_optimizer), not its result")
    model = _half_frozen()
    optimizer = call(answer, model, what="your make_optimizer")
    if not isinstance(optimizer, torch.optim.Optimizer):
        return wrong(f"make_optimizer returned a {type(optimizer).__name__}; return the "
                     "optimizer (for example torch.optim.AdamW([...]))")  # fmt: skip
    names = {id(p): n for n, p in model.named_parameters()}
    rate_of = {}
    for group in optimizer.param_groups:
        for p in group["params"]:
            rate_of[names.get(id(p), "?")] = group["lr"]
    if "?" in rate_of:
        return wrong("the optimizer holds parameters of another model: build it from the "
                     "model passed to your function")  # fmt: skip
    if any(_group(n) in _FROZEN for n in rate_of):
        return wrong("the optimizer holds frozen parameters (stem, layer1, layer2): give it "
                     "only the groups that train")  # fmt: skip
    for part in _RATES:
        missing = [n for n, p in model.named_parameters() if _group(n) == part and n not in rate_of]
        if missing:
            return wrong(
                f"{part} is not in the optimizer ({missing[0]}, ...): it would never change"
            )
    rates = {part: {r for n, r in rate_of.items() if _group(n) == part} for part in _RATES}
    if len({r for values in rates.values() for r in values}) == 1:
        return wrong("every group has the same learning rate: discriminative rates give the "
                     "head the largest and earlier layers smaller ones")  # fmt: skip
    if max(rates["layer3"]) > min(rates["fc"]):
        return wrong("the rates run the wrong way: the head, new and random, needs the largest; "
                     "pretrained layers near the input need the smallest")  # fmt: skip
    for part, rate in _RATES.items():
        if rates[part] != {rate}:
            return wrong(f"{part} trains at {sorted(rates[part])}; the exercise asks for {rate:g}")
    return Result(True, "fc at 1e-3, layer4 at 1e-4, layer3 at 1e-5, frozen layers left out: "
                        "the pretrained features change slowly, the new head quickly.")  # fmt: skip


q1 = Exercise(
    "04", 1, "training mode with frozen BatchNorm", _check_train_mode,
    hint_text="model.train() first; then, for every nn.BatchNorm2d whose parameters do not "
    "require gradients, call .eval() on that layer.",
    solution_code="""from torch import nn

def set_train_mode(model):
    model.train()
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d) and not any(
                p.requires_grad for p in module.parameters()):
            module.eval()""",
)  # fmt: skip
q2 = Exercise(
    "04", 2, "discriminative learning rates", _check_optimizer,
    hint_text="One parameter group per part: [{'params': model.fc.parameters(), 'lr': 1e-3}, "
    "...]; the frozen stem, layer1 and layer2 stay out.",
    solution_code="""import torch

def make_optimizer(model):
    return torch.optim.AdamW([
        {"params": model.fc.parameters(), "lr": 1e-3},
        {"params": model.layer4.parameters(), "lr": 1e-4},
        {"params": model.layer3.parameters(), "lr": 1e-5},
    ], weight_decay=1e-4)""",
)  # fmt: skip
EXERCISES = [q1, q2]

"""Freezing and unfreezing: layer groups, ``freeze_to``, discriminative learning rates.
(Gradual unfreezing, which applies ``freeze_to`` epoch by epoch during ``fit``, is the
callback :class:`cnnlab.callbacks.GradualUnfreezing`.)

A *layer group* is a run of consecutive layers that are frozen or unfrozen together:
for a ResNet the stem, ``layer1`` .. ``layer4`` and the head. Fine-tuning recipes work on
groups, from the input side (generic edges and textures, worth keeping) to the head (task
specific, always trained).

Example:
    >>> from cnnlab.models import SmallResNet
    >>> model = SmallResNet(num_classes=5, width=8)
    >>> list(layer_groups(model))
    ['stem', 'layer1', 'layer2', 'layer3', 'head']
    >>> freeze_to(model, -1)            # everything but the head
    >>> print(group_table(model))        # doctest: +SKIP
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from torch import nn

from .models import SmallResNet

Groups = dict[str, list[nn.Module]]


def _params(modules: nn.Module | Iterable[nn.Module]) -> list[nn.Parameter]:
    if isinstance(modules, nn.Module):
        modules = [modules]
    return [p for m in modules for p in m.parameters()]


def freeze(modules: nn.Module | Iterable[nn.Module]) -> None:
    """Stop training these modules: ``requires_grad=False`` on all their parameters.

    Example:
        >>> layer = nn.Linear(3, 2); freeze(layer)
        >>> any(p.requires_grad for p in layer.parameters())
        False
    """
    for p in _params(modules):
        p.requires_grad_(False)


def unfreeze(modules: nn.Module | Iterable[nn.Module]) -> None:
    """Train these modules again: ``requires_grad=True`` on all their parameters.

    Example:
        >>> layer = nn.Linear(3, 2); freeze(layer); unfreeze(layer)
        >>> all(p.requires_grad for p in layer.parameters())
        True
    """
    for p in _params(modules):
        p.requires_grad_(True)


def _split_evenly(blocks: list[nn.Module], parts: int) -> list[list[nn.Module]]:
    size = math.ceil(len(blocks) / parts)
    return [blocks[i : i + size] for i in range(0, len(blocks), size)]


def layer_groups(model: nn.Module) -> Groups:
    """The model's layer groups, from input to output, as ``{name: [modules]}``.

    Known families: torchvision's ResNet, MobileNetV2/V3, EfficientNet, VGG, AlexNet,
    DenseNet, GoogLeNet and Inception v3, and cnnlab's ``SmallResNet``. The last group is
    always ``"head"``.

    Example:
        >>> import torchvision
        >>> list(layer_groups(torchvision.models.resnet18()))
        ['stem', 'layer1', 'layer2', 'layer3', 'layer4', 'head']
    """
    from torchvision import models as tvm

    if isinstance(model, tvm.ResNet):
        groups = {"stem": [model.conv1, model.bn1]}
        groups |= {f"layer{i}": [getattr(model, f"layer{i}")] for i in range(1, 5)}
        return groups | {"head": [model.fc]}
    if isinstance(model, SmallResNet):
        names = ["stem", "layer1", "layer2", "layer3", "head"]
        return {name: [getattr(model, name)] for name in names}
    if isinstance(model, (tvm.MobileNetV2, tvm.MobileNetV3, tvm.EfficientNet)):
        blocks = list(model.features)
        groups = {"stem": [blocks[0]]}
        for i, chunk in enumerate(_split_evenly(blocks[1:], 4), start=1):
            groups[f"blocks{i}"] = chunk
        return groups | {"head": [model.classifier]}
    if isinstance(model, (tvm.VGG, tvm.AlexNet)):
        groups, current, i = {}, [], 1
        for layer in model.features:
            current.append(layer)
            if isinstance(layer, nn.MaxPool2d):
                groups[f"conv{i}"], current, i = current, [], i + 1
        return groups | {"head": [model.classifier]}
    if isinstance(model, tvm.DenseNet):
        f = model.features
        groups = {"stem": [f.conv0, f.norm0]}
        for i in range(1, 4):
            groups[f"dense{i}"] = [getattr(f, f"denseblock{i}"), getattr(f, f"transition{i}")]
        groups["dense4"] = [f.denseblock4, f.norm5]
        return groups | {"head": [model.classifier]}
    if isinstance(model, (tvm.GoogLeNet, tvm.Inception3)):  # a chain of blocks, then fc
        blocks = [m for name, m in model.named_children() if name != "fc" and m is not None]
        groups = {f"blocks{i}": chunk for i, chunk in enumerate(_split_evenly(blocks, 4), start=1)}
        return groups | {"head": [model.fc]}
    raise TypeError(
        f"layer_groups does not know {type(model).__name__}. Known: torchvision ResNet, "
        "MobileNetV2/V3, EfficientNet, VGG, AlexNet, DenseNet, GoogLeNet, Inception v3 and "
        "cnnlab SmallResNet. For your own model, freeze its parts directly with "
        "freeze(model.part) / unfreeze(model.part)."
    )


def freeze_to(model: nn.Module, n: int) -> None:
    """Freeze the first ``n`` layer groups and unfreeze the rest (``n`` may be negative:
    ``-1`` freezes all but the head, ``0`` unfreezes everything).

    Example:
        >>> from cnnlab.models import SmallResNet
        >>> model = SmallResNet(width=8); freeze_to(model, 3)
        >>> [any(p.requires_grad for p in m.parameters()) for m in model.children()]
        [False, False, False, True, True]
    """
    groups = list(layer_groups(model).values())
    cut = n if n >= 0 else len(groups) + n
    if not 0 <= cut <= len(groups):
        raise ValueError(f"freeze_to: n={n} is out of range for {len(groups)} layer groups")
    for i, modules in enumerate(groups):
        (freeze if i < cut else unfreeze)(modules)


@dataclass(frozen=True)
class GroupRow:
    name: str
    trainable: int
    total: int


@dataclass(frozen=True)
class GroupTable:
    """Trainable vs total parameters per layer group (printable)."""

    rows: list[GroupRow]

    @property
    def trainable(self) -> int:
        return sum(r.trainable for r in self.rows)

    @property
    def total(self) -> int:
        return sum(r.total for r in self.rows)

    def __str__(self) -> str:
        lines = [f"{'group':<10} {'trainable':>12} {'total':>12}  state"]
        for r in self.rows:
            state = (
                "frozen" if r.trainable == 0 else "trained" if r.trainable == r.total else "part"
            )
            lines.append(f"{r.name:<10} {r.trainable:>12,} {r.total:>12,}  {state}")
        share = self.trainable / self.total if self.total else 0.0
        lines.append(f"{'all':<10} {self.trainable:>12,} {self.total:>12,}  {share:.1%} trained")
        return "\n".join(lines)


def group_table(model: nn.Module) -> GroupTable:
    """Trainable and total parameter counts for each layer group.

    Example:
        >>> from cnnlab.models import SmallResNet
        >>> model = SmallResNet(width=8); freeze_to(model, -1)
        >>> group_table(model).rows[-1].name, group_table(model).trainable
        ('head', 650)
    """
    rows = []
    for name, modules in layer_groups(model).items():
        params = _params(modules)
        rows.append(
            GroupRow(
                name,
                sum(p.numel() for p in params if p.requires_grad),
                sum(p.numel() for p in params),
            )
        )
    return GroupTable(rows)


_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm)


def keep_frozen_batchnorm_in_eval(model: nn.Module) -> int:
    """Put every BatchNorm layer whose parameters are all frozen into eval mode.

    In train mode BatchNorm normalises with the *batch's* statistics and updates its
    running mean and variance, even when its weights are frozen. A frozen pretrained
    backbone should keep the statistics it was trained with, so call this after
    ``model.train()`` (``fit`` does). Returns how many layers were switched.

    Example:
        >>> model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4)); freeze(model[1])
        >>> model.train(); keep_frozen_batchnorm_in_eval(model)  # doctest: +ELLIPSIS
        Sequential(...)
        1
    """
    switched = 0
    for module in model.modules():
        params = list(module.parameters(recurse=False))
        if isinstance(module, _NORMS) and params and not any(p.requires_grad for p in params):
            module.eval()
            switched += 1
    return switched


def discriminative_param_groups(
    model: nn.Module, lrs: float | Sequence[float] | tuple[float, float]
) -> list[dict]:
    """Optimizer parameter groups, one per layer group, with a learning rate each.

    ``lrs`` is one LR per layer group, or a pair ``(lowest, highest)`` spread geometrically
    from the first group to the head (early layers change least). Every parameter is
    included, frozen or not: a frozen one has no gradient, so the optimizer skips it until
    it is unfrozen; that is what lets gradual unfreezing keep one optimizer and schedule.

    Example:
        >>> from cnnlab.models import SmallResNet
        >>> groups = discriminative_param_groups(SmallResNet(width=8), (1e-4, 1e-2))
        >>> [f"{g['name']}={g['lr']:.0e}" for g in groups]
        ['stem=1e-04', 'layer1=3e-04', 'layer2=1e-03', 'layer3=3e-03', 'head=1e-02']
        >>> optimizer = torch.optim.SGD(groups, lr=1e-2, momentum=0.9)
    """
    names = list(layer_groups(model))
    groups = layer_groups(model)
    if isinstance(lrs, tuple) and len(lrs) == 2 and len(names) != 2:
        low, high = lrs
        steps = len(names) - 1
        lrs = [low * (high / low) ** (i / steps) for i in range(len(names))]
    elif isinstance(lrs, (int, float)):
        lrs = [float(lrs)] * len(names)
    if len(lrs) != len(names):
        raise ValueError(
            f"got {len(lrs)} learning rates for {len(names)} layer groups {names}: "
            "give one per group, or a (lowest, highest) pair"
        )
    covered = {id(p) for name in names for p in _params(groups[name])}
    missing = [n for n, p in model.named_parameters() if id(p) not in covered]
    if missing:
        raise ValueError(f"parameters outside every layer group: {missing[:5]}")
    return [
        {"params": _params(groups[name]), "lr": lr, "name": name}
        for name, lr in zip(names, lrs, strict=True)
    ]

"""How big a model is: parameter counts, multiply-accumulates (MACs) per image, and a
layer-by-layer summary table (shapes and parameters, as Keras' ``model.summary()``)."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn


def count_macs(model: nn.Module, input_shape: tuple[int, ...] = (1, 3, 32, 32)) -> int:
    """Multiply-adds of one forward pass per image, counted by PyTorch's
    ``torch.utils.flop_counter`` (which counts a multiply-add as 2 FLOPs).

    Example:
        >>> f"{count_macs(SimpleCNN()) / 1e6:.1f} M"
        '...M'
    """
    from torch.utils.flop_counter import FlopCounterMode

    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(torch.zeros(input_shape, device=device))
    finally:
        model.train(was_training)
    return counter.get_total_flops() // 2 // input_shape[0]


@dataclass(frozen=True)
class ParamCount:
    """Trainable and total parameter counts of a model."""

    trainable: int
    total: int

    @property
    def frozen(self) -> int:
        return self.total - self.trainable


def count_parameters(model: nn.Module) -> ParamCount:
    """Count a model's parameters, trainable and in total.

    Example:
        >>> count_parameters(nn.Linear(10, 2))
        ParamCount(trainable=22, total=22)
    """
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return ParamCount(trainable, total)


@dataclass(frozen=True)
class LayerRow:
    """One line of a :class:`ModelSummary`."""

    name: str
    kind: str
    output_shape: tuple[int, ...]
    params: int
    trainable: bool | None  # None for layers without parameters


@dataclass
class ModelSummary:
    """Per-layer output shapes and parameter counts; prints as a table."""

    rows: list[LayerRow] = field(default_factory=list)
    params: ParamCount = ParamCount(0, 0)

    def __str__(self) -> str:
        lines = [f"{'layer':<24}{'type':<18}{'output shape':<22}{'params':>10}  trainable"]
        lines.append("-" * len(lines[0]))
        for r in self.rows:
            shape = "x".join(str(d) for d in r.output_shape)
            lines.append(
                f"{r.name:<24}{r.kind:<18}{shape:<22}{r.params:>10,}  "
                f"{'-' if r.trainable is None else 'yes' if r.trainable else 'no'}"
            )
        lines.append("-" * len(lines[0]))
        lines.append(f"total {self.params.total:,} parameters, {self.params.trainable:,} trainable")
        return "\n".join(lines)

    __repr__ = __str__


def summary(model: nn.Module, input_shape: tuple[int, ...] = (1, 3, 32, 32)) -> ModelSummary:
    """Run one dummy batch through ``model`` and tabulate every leaf layer's output.

    Example:
        >>> print(summary(SimpleCNN(), (1, 3, 32, 32)))  # doctest: +SKIP
        layer                   type              output shape              params  trainable
        features.0              Conv2d            1x32x32x32                   896  yes
        ...
    """
    result = ModelSummary(params=count_parameters(model))
    hooks = []
    for name, module in model.named_modules():
        if any(True for _ in module.children()):
            continue  # only leaf layers

        def hook(mod, _inp, out, name=name):
            own = list(mod.parameters(recurse=False))
            result.rows.append(
                LayerRow(
                    name=name,
                    kind=type(mod).__name__,
                    output_shape=tuple(out.shape) if isinstance(out, torch.Tensor) else (),
                    params=sum(p.numel() for p in own),
                    trainable=any(p.requires_grad for p in own) if own else None,
                )
            )

        hooks.append(module.register_forward_hook(hook))
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(torch.zeros(input_shape, device=device))
    finally:
        model.train(was_training)
        for h in hooks:
            h.remove()
    return result


__all__ = ["LayerRow", "ModelSummary", "ParamCount", "count_macs", "count_parameters", "summary"]

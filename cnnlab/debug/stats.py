"""Per-layer activation and gradient statistics, and a NaN/Inf detector."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from ..errors import CnnlabError


class NonFiniteError(CnnlabError, FloatingPointError):
    """A layer produced NaN or Inf; the message names the first one."""


@dataclass(frozen=True)
class LayerRow:
    name: str
    layer: str
    act_mean: float
    act_std: float
    zero_fraction: float
    grad_norm: float | None


@dataclass
class LayerStats:
    """Activation and gradient statistics per leaf layer, with warnings."""

    rows: list[LayerRow] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        lines = [f"{'layer':<24} {'type':<14} {'act mean':>9} {'act std':>9} {'zeros':>6} "
                 f"{'grad norm':>10}"]  # fmt: skip
        for r in self.rows:
            grad = f"{r.grad_norm:>10.2e}" if r.grad_norm is not None else f"{'-':>10}"
            lines.append(f"{r.name:<24} {r.layer:<14} {r.act_mean:>9.3f} {r.act_std:>9.3f} "
                         f"{r.zero_fraction:>6.0%} {grad}")  # fmt: skip
        lines += [f"warning: {w}" for w in self.warnings]
        return "\n".join(lines)


def layer_stats(
    model: nn.Module,
    batch: tuple[torch.Tensor, torch.Tensor],
    loss_fn: nn.Module | None = None,
    vanishing: float = 1e-6,
    exploding: float = 1e3,
    dead: float = 0.99,
) -> LayerStats:
    """One forward and backward pass with hooks: each layer's output mean, std and share
    of zeros, and its weight-gradient norm. Warns about vanishing (< ``vanishing``) or
    exploding (> ``exploding``) gradient norms and dead ReLUs (more than ``dead`` of the
    outputs are zero). Gradients are cleared afterwards.

    Example:
        >>> net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
        >>> with torch.no_grad():
        ...     _ = net[0].bias.fill_(-100.0)   # every ReLU input negative: dead
        >>> stats = layer_stats(net, (torch.randn(16, 4), torch.zeros(16, dtype=torch.long)))
        >>> [w.split(":")[0] for w in stats.warnings]
        ["dead ReLU '1'", "vanishing gradient in '0'"]
    """
    names = {m: n for n, m in model.named_modules() if n and not list(m.children())}
    outputs: dict[nn.Module, tuple[float, float, float]] = {}

    def record(module, _inputs, output):
        if isinstance(output, torch.Tensor) and output.is_floating_point():
            o = output.detach().float()
            outputs[module] = (o.mean().item(), o.std().item() if o.numel() > 1 else 0.0,
                               (o == 0).float().mean().item())  # fmt: skip

    handles = [m.register_forward_hook(record) for m in names]
    x, y = batch
    device = next(model.parameters(), torch.empty(0)).device
    model.zero_grad(set_to_none=True)
    try:
        loss = (loss_fn or nn.CrossEntropyLoss())(model(x.to(device)), y.to(device))
        loss.backward()
    finally:
        for handle in handles:
            handle.remove()
    stats = LayerStats()
    for module, name in names.items():
        if module not in outputs:
            continue
        grads = [p.grad for p in module.parameters(recurse=False) if p.grad is not None]
        norm = (
            torch.linalg.vector_norm(torch.cat([g.flatten() for g in grads])).item()
            if grads
            else None
        )
        mean, std, zeros = outputs[module]
        stats.rows.append(LayerRow(name, type(module).__name__, mean, std, zeros, norm))
        if isinstance(module, (nn.ReLU, nn.ReLU6)) and zeros > dead:
            stats.warnings.append(f"dead ReLU '{name}': {zeros:.0%} of its outputs are zero, so "
                                  "no gradient flows back through it. Lower the learning rate, "
                                  "check the initialisation, or try LeakyReLU.")  # fmt: skip
    for row in stats.rows:
        if row.grad_norm is not None and row.grad_norm < vanishing:
            stats.warnings.append(f"vanishing gradient in '{row.name}': norm {row.grad_norm:.1e}. "
                                  "Deep plain stacks lose their gradient: add BatchNorm or "
                                  "residual connections; check for dead ReLUs above it.")  # fmt: skip
        elif row.grad_norm is not None and row.grad_norm > exploding:
            stats.warnings.append(f"exploding gradient in '{row.name}': norm {row.grad_norm:.1e}. "
                                  "Lower the learning rate, normalise the inputs, or clip "
                                  "gradients (fit(..., grad_clip=1.0)).")  # fmt: skip
    model.zero_grad(set_to_none=True)
    return stats


def find_nonfinite(model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor] | torch.Tensor,
                   loss_fn: nn.Module | None = None) -> None:  # fmt: skip
    """Run ``batch`` forward (and backward when labels are given) and raise
    :class:`NonFiniteError` naming the first layer whose output, or the first parameter
    whose gradient, is NaN or Inf. Returns quietly when everything is finite.

    Example:
        >>> net = nn.Sequential(nn.Linear(2, 2), nn.LogSoftmax(dim=1))
        >>> with torch.no_grad():
        ...     _ = net[0].weight.fill_(float("inf"))
        >>> find_nonfinite(net, torch.ones(1, 2))
        Traceback (most recent call last):
        ...
        cnnlab.debug.stats.NonFiniteError: layer '0' (Linear) produced NaN/Inf ...
    """
    x, y = batch if isinstance(batch, (tuple, list)) else (batch, None)
    names = {m: n for n, m in model.named_modules() if n and not list(m.children())}
    first: list[str] = []

    def check(module, inputs, output):
        if first or not isinstance(output, torch.Tensor) or torch.isfinite(output).all():
            return
        clean = all(torch.isfinite(i).all() for i in inputs if isinstance(i, torch.Tensor))
        if clean:
            first.append(f"layer '{names[module]}' ({type(module).__name__}) produced NaN/Inf "
                         "from finite inputs. Check its weights (a too-high learning rate "
                         "makes them explode), a log or division of zero, or float16 overflow.")  # fmt: skip

    handles = [m.register_forward_hook(check) for m in names]
    device = next(model.parameters(), torch.empty(0)).device
    try:
        out = model(x.to(device))
        if not first and not torch.isfinite(x).all():
            first.append("the input batch itself contains NaN/Inf: check the data.")
        if first:
            raise NonFiniteError(first[0])
        if y is not None:
            model.zero_grad(set_to_none=True)
            (loss_fn or nn.CrossEntropyLoss())(out, y.to(device)).backward()
            for name, p in model.named_parameters():
                if p.grad is not None and not torch.isfinite(p.grad).all():
                    raise NonFiniteError(f"the gradient of '{name}' is NaN/Inf although the "
                                         "forward pass is finite: lower the learning rate or "
                                         "clip gradients.")  # fmt: skip
    finally:
        for handle in handles:
            handle.remove()

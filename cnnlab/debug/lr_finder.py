"""The learning-rate range test: raise the LR every batch and watch the loss."""

from __future__ import annotations

import copy
import math
from collections.abc import Iterable
from dataclasses import dataclass

import torch
from torch import nn


@dataclass
class LRFinderResult:
    """Learning rates tried, the smoothed loss at each, and the suggested LR."""

    lrs: list[float]
    losses: list[float]
    suggestion: float

    def plot(self):
        """Loss against learning rate (log scale), the suggestion marked; returns the figure."""
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(6, 3.5))
        ax.plot(self.lrs, self.losses)
        ax.axvline(self.suggestion, color="tab:red", ls="--",
                   label=f"suggested {self.suggestion:.1e}")  # fmt: skip
        ax.set(xscale="log", xlabel="learning rate", ylabel="loss (smoothed)",
               title="learning-rate range test")  # fmt: skip
        ax.legend()
        fig.tight_layout()
        return fig


def _centred_mean(values: list[float], window: int) -> list[float]:
    half = window // 2
    return [sum(values[max(0, i - half) : i + half + 1]) / len(values[max(0, i - half) : i + half + 1])
            for i in range(len(values))]  # fmt: skip


def lr_find(
    model: nn.Module,
    loader: Iterable,
    loss_fn: nn.Module | None = None,
    optimizer_cls: type[torch.optim.Optimizer] = torch.optim.Adam,
    start_lr: float = 1e-7,
    end_lr: float = 1.0,
    steps: int = 100,
    diverge: float = 4.0,
) -> LRFinderResult:
    """Train for up to ``steps`` batches while the LR grows exponentially from ``start_lr``
    to ``end_lr``; stop early once the loss exceeds ``diverge`` times its lowest value.

    The loss curve is smoothed with a centred moving average (which, unlike a running
    average, does not lag behind the LR). The suggestion is a tenth of the LR at the
    lowest smoothed loss: still on the steep, falling part of the curve, safely below
    where training becomes unstable. The model's weights are restored afterwards.

    Example:
        >>> result = lr_find(SimpleCNN(), train_loader)  # doctest: +SKIP
        >>> result.plot(); print(f"try lr={result.suggestion:.0e}")  # doctest: +SKIP
    """
    loss_fn = loss_fn or nn.CrossEntropyLoss()
    device = next(model.parameters()).device
    saved = copy.deepcopy(model.state_dict())
    optimizer = optimizer_cls([p for p in model.parameters() if p.requires_grad], lr=start_lr)
    factor = (end_lr / start_lr) ** (1 / max(1, steps - 1))
    lrs: list[float] = []
    raw: list[float] = []
    model.train()
    try:
        while len(lrs) < steps:
            for x, y in loader:
                lr = start_lr * factor ** len(lrs)
                for group in optimizer.param_groups:
                    group["lr"] = lr
                loss = loss_fn(model(x.to(device)), y.to(device))
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                lrs.append(lr)
                raw.append(loss.item())
                if len(lrs) >= steps or not math.isfinite(raw[-1]) or raw[-1] > diverge * min(raw):
                    break
            if not math.isfinite(raw[-1]) or raw[-1] > diverge * min(raw):
                break
    finally:
        model.load_state_dict(saved)
    finite = [i for i, v in enumerate(raw) if math.isfinite(v)]
    if len(finite) < 5:
        raise ValueError(f"the range test stopped after {len(lrs)} steps: start lower "
                         "(start_lr) or give it more batches")  # fmt: skip
    lrs, raw = [lrs[i] for i in finite], [raw[i] for i in finite]
    smoothed = _centred_mean(raw, max(3, len(raw) // 15))
    lowest = min(range(len(smoothed)), key=smoothed.__getitem__)
    return LRFinderResult(lrs, smoothed, lrs[lowest] / 10)

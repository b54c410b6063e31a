"""Overfit one batch: the quickest proof that a model, loss and optimizer can learn."""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import nn


@dataclass
class OverfitResult:
    """The loss at every step on one batch, and the verdict."""

    losses: list[float]
    threshold: float

    @property
    def final_loss(self) -> float:
        return self.losses[-1]

    @property
    def success(self) -> bool:
        return self.final_loss < self.threshold

    @property
    def message(self) -> str:
        start, end = self.losses[0], self.final_loss
        if self.success:
            return (f"OK: the loss fell from {start:.3f} to {end:.4f} in {len(self.losses)} "
                    "steps; the model, loss and optimizer can learn.")  # fmt: skip
        return (f"PROBLEM: the loss only went from {start:.3f} to {end:.3f} in "
                f"{len(self.losses)} steps (target < {self.threshold}). A healthy model "
                "memorises one batch easily. Check: labels match the images; no softmax "
                "before CrossEntropyLoss; optimizer.zero_grad() every step; the learning "
                "rate (try 1e-3 with Adam); the parameters you pass to the optimizer are "
                "the ones that train (requires_grad).")  # fmt: skip

    def __str__(self) -> str:
        return self.message

    def plot(self):
        """Plot the loss curve (log scale); returns the figure."""
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(6, 3.5))
        ax.plot(range(1, len(self.losses) + 1), self.losses)
        ax.axhline(self.threshold, color="gray", ls="--", label="near zero")
        ax.set(yscale="log", xlabel="step", ylabel="loss on the batch", title=self.message[:40])
        ax.legend()
        fig.tight_layout()
        return fig


def overfit_one_batch(
    model: nn.Module,
    batch: tuple[torch.Tensor, torch.Tensor],
    steps: int = 100,
    lr: float = 1e-3,
    loss_fn: nn.Module | None = None,
    optimizer: torch.optim.Optimizer | None = None,
    threshold: float = 0.05,
    restore: bool = True,
) -> OverfitResult:
    """Train on a single batch for ``steps`` steps and report whether the loss reaches
    near zero (below ``threshold``). The model's weights are restored afterwards unless
    ``restore=False``.

    Example:
        >>> _ = torch.manual_seed(0)
        >>> x, y = torch.randn(16, 3, 8, 8), torch.arange(16) % 4
        >>> net = nn.Sequential(nn.Flatten(), nn.Linear(192, 64), nn.ReLU(), nn.Linear(64, 4))
        >>> overfit_one_batch(net, (x, y), steps=100).success
        True
    """
    x, y = batch
    device = next(model.parameters()).device
    x, y = x.to(device), y.to(device)
    loss_fn = loss_fn or nn.CrossEntropyLoss()
    saved = copy.deepcopy(model.state_dict()) if restore else None
    optimizer = optimizer or torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    losses = []
    try:
        for _ in range(steps):
            loss = loss_fn(model(x), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
    finally:
        if saved is not None:
            model.load_state_dict(saved)
    return OverfitResult(losses, threshold)

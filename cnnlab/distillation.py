"""Knowledge distillation (Hinton, Vinyals & Dean, 2015): a small *student* network learns
from a large *teacher*'s output probabilities as well as from the labels.

The teacher's probabilities carry more than the label: for a cat, "a little dog, no
truck". A **temperature** ``T`` above 1 softens both networks' softmax so that those small
probabilities count; the student minimises the Kullback-Leibler divergence to the
teacher's softened distribution (times ``T**2``, which keeps its gradients on the scale of
the label's loss) mixed with ordinary cross-entropy on the labels.

Example:
    >>> student, teacher = SimpleCNN(), SimpleCNN()
    >>> distill = Distillation(student, teacher, temperature=4.0, alpha=0.9)
    >>> fit(distill, train_loader, val_loader, epochs=5, loss_fn=distill.loss,
    ...     optimizer=torch.optim.Adam(student.parameters(), 1e-3))  # doctest: +SKIP
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


def distillation_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor,
                      labels: torch.Tensor, temperature: float = 4.0,
                      alpha: float = 0.9) -> torch.Tensor:  # fmt: skip
    """``alpha * T**2 * KL(teacher_T || student_T) + (1 - alpha) * CE(student, labels)``,
    with ``*_T`` the softmax at temperature ``T``.

    Example:
        >>> logits = torch.tensor([[2.0, 0.5, -1.0]])
        >>> float(distillation_loss(logits, logits, torch.tensor([0]), alpha=1.0))  # same as teacher
        0.0
    """
    soft_student = F.log_softmax(student_logits.float() / temperature, dim=1)
    soft_teacher = F.softmax(teacher_logits.float() / temperature, dim=1)
    soft = F.kl_div(soft_student, soft_teacher, reduction="batchmean") * temperature**2
    if alpha >= 1:
        return soft
    return alpha * soft + (1 - alpha) * F.cross_entropy(student_logits, labels)


class Distillation(nn.Module):
    """A student and a frozen teacher, packaged for ``fit``: in training, ``forward``
    returns the student's logits and keeps the teacher's (computed without gradients) for
    :meth:`loss`; in evaluation only the student runs, and :meth:`loss` is plain
    cross-entropy, so validation measures the student alone. Give ``fit`` an optimizer
    over ``student.parameters()``.

    Example:
        >>> distill = Distillation(nn.Linear(4, 3), nn.Linear(4, 3))
        >>> logits = distill(torch.randn(2, 4))
        >>> distill.loss(logits, torch.tensor([0, 2])).shape
        torch.Size([])
    """

    def __init__(self, student: nn.Module, teacher: nn.Module, temperature: float = 4.0,
                 alpha: float = 0.9) -> None:  # fmt: skip
        super().__init__()
        self.student, self.teacher = student, teacher.eval().requires_grad_(False)
        self.temperature, self.alpha = temperature, alpha
        self._teacher_logits: torch.Tensor | None = None

    def train(self, mode: bool = True) -> Distillation:
        super().train(mode)
        self.teacher.eval()  # the teacher never trains: its BatchNorm statistics stay
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.student(x)
        if self.training:
            with torch.no_grad():
                self._teacher_logits = self.teacher(x)
        return logits

    def loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """The distillation loss in training, cross-entropy in evaluation."""
        if not self.training or self._teacher_logits is None:
            return F.cross_entropy(logits, labels)
        return distillation_loss(logits, self._teacher_logits, labels, self.temperature,
                                 self.alpha)  # fmt: skip


__all__ = ["Distillation", "distillation_loss"]

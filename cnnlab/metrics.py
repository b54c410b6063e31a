"""Predictions and the numbers computed from them: confusion matrix, per-class accuracy."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import torch
from sklearn.metrics import confusion_matrix as _sk_confusion_matrix
from torch import nn


@dataclass
class Predictions:
    """True labels, predicted labels and class probabilities for a whole loader."""

    y_true: np.ndarray
    y_pred: np.ndarray
    probs: np.ndarray

    @property
    def accuracy(self) -> float:
        return float((self.y_true == self.y_pred).mean()) if len(self.y_true) else 0.0


@torch.no_grad()
def predict_loader(
    model: nn.Module, loader: Iterable, device: torch.device | str | None = None
) -> Predictions:
    """Run ``model`` (in eval mode) over ``loader`` and collect labels and predictions.

    Example:
        >>> preds = predict_loader(model, test_loader)  # doctest: +SKIP
        >>> preds.accuracy  # doctest: +SKIP
        0.71
    """
    device = torch.device(device) if device is not None else next(model.parameters()).device
    was_training = model.training
    model.eval()
    trues, probs = [], []
    try:
        for x, y in loader:
            logits = model(x.to(device))
            probs.append(torch.softmax(logits.float(), dim=-1).cpu())
            trues.append(torch.as_tensor(y).cpu())
    finally:
        model.train(was_training)
    p = torch.cat(probs).numpy() if probs else np.zeros((0, 0), dtype=np.float32)
    t = torch.cat(trues).numpy() if trues else np.zeros(0, dtype=np.int64)
    return Predictions(t, p.argmax(axis=1) if len(p) else t.copy(), p)


def confusion_matrix(y_true, y_pred, num_classes: int) -> np.ndarray:
    """Counts ``cm[i, j]`` of images of true class ``i`` predicted as ``j``.

    Example:
        >>> confusion_matrix([0, 1, 1], [0, 1, 0], num_classes=2)
        array([[1, 0],
               [1, 1]])
    """
    return _sk_confusion_matrix(y_true, y_pred, labels=list(range(num_classes)))


def per_class_accuracy(cm: np.ndarray) -> np.ndarray:
    """Accuracy of each class (the diagonal over each row's total; NaN for empty rows).

    Example:
        >>> per_class_accuracy(np.array([[3, 1], [0, 4]]))
        array([0.75, 1.  ])
    """
    totals = cm.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(totals > 0, np.diag(cm) / totals, np.nan)

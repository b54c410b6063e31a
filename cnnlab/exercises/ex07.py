"""Checked exercises of notebook 07 (training fast): label-smoothed targets, and
test-time augmentation with flips."""

from __future__ import annotations

import torch
from torch import nn

from .base import Exercise, Result, call, wrong


def _check_smoothing(answer) -> Result:
    if not callable(answer):
        return wrong("answer with your function itself (smoothed_targets), not its result")
    labels, k, e = torch.tensor([0, 3, 9]), 10, 0.2
    out = call(answer, labels, k, e, what="your smoothed_targets")
    if not isinstance(out, torch.Tensor):
        return wrong(f"smoothed_targets returned a {type(out).__name__}; return a tensor")
    if tuple(out.shape) != (3, 10):
        return wrong(f"the result is {tuple(out.shape)}; one row of {k} per label: (3, 10)")
    out = out.float()
    true = out[torch.arange(3), labels]
    others = out.masked_fill(nn.functional.one_hot(labels, k).bool(), float("nan"))
    if torch.allclose(true, torch.full((3,), 1 - e)) and torch.allclose(others.nanmean(), torch.tensor(e / (k - 1))):  # fmt: skip
        return wrong("that spreads e over the other K - 1 classes; PyTorch's "
                     "label_smoothing spreads it over all K, the true class included: "
                     "1 - e + e / K for the true class, e / K for each other")  # fmt: skip
    if torch.allclose(true, torch.full((3,), 1 - e)):
        return wrong("the true class gets 1 - e, but it also gets its share of e: "
                     "1 - e + e / K (0.82 here); as it is, the rows sum to less than 1")  # fmt: skip
    if not torch.allclose(out.sum(1), torch.ones(3), atol=1e-5):
        return wrong("each row must sum to 1: it is a probability distribution over classes")
    want = torch.full((3, k), e / k)
    want[torch.arange(3), labels] += 1 - e
    if not torch.allclose(out, want, atol=1e-5):
        return wrong("the values differ from 1 - e + e / K (true class) and e / K (others)")
    return Result(True, "0.82 for the true class and 0.02 for each other: the targets that "
                        "nn.CrossEntropyLoss(label_smoothing=0.2) aims at.")  # fmt: skip


class _Asymmetric(nn.Module):
    """Logits that depend on where things are, so every flip gives other logits."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.linear = nn.Linear(3 * 4 * 6, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x.flatten(1))


def _check_tta(answer) -> Result:
    if not callable(answer):
        return wrong("answer with your function itself (tta_logits), not its result")
    model = _Asymmetric().eval()
    x = torch.rand(2, 3, 4, 6)
    with torch.no_grad():
        out = call(answer, model, x, what="your tta_logits")
        plain, mirrored, upside = model(x), model(x.flip(-1)), model(x.flip(-2))
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != (2, 5):
        return wrong("return the averaged logits, one row per image: shape (N, classes)")
    if torch.allclose(out, plain):
        return wrong("those are the plain logits: average them with the logits of the mirror "
                     "image, model(x.flip(-1))")  # fmt: skip
    if torch.allclose(out, (plain + upside) / 2, atol=1e-5):
        return wrong("that flips the images upside down (the height axis): a mirror image "
                     "flips the width, the last axis: x.flip(-1)")  # fmt: skip
    probabilities = (plain.softmax(1) + mirrored.softmax(1)) / 2
    if torch.allclose(out, probabilities, atol=1e-5):
        return Result(True, "averaged probabilities of the image and its mirror: that works "
                            "too (cnnlab averages the logits).")  # fmt: skip
    if not torch.allclose(out, (plain + mirrored) / 2, atol=1e-5):
        return wrong("average the two views' logits: (model(x) + model(x.flip(-1))) / 2")
    return Result(True, "the mean of the image's and its mirror's logits: free accuracy at "
                        "test time, for a second forward pass.")  # fmt: skip


q1 = Exercise(
    "07", 1, "label-smoothed targets", _check_smoothing,
    hint_text="Start from e / K everywhere, then add 1 - e at each label's position "
    "(torch.full, then indexing with torch.arange(N) and the labels).",
    solution_code="""import torch

def smoothed_targets(labels, num_classes, e):
    targets = torch.full((len(labels), num_classes), e / num_classes)
    targets[torch.arange(len(labels)), labels] += 1 - e
    return targets""",
)  # fmt: skip
q2 = Exercise(
    "07", 2, "test-time augmentation with a flip", _check_tta,
    hint_text="A mirror image reverses the width, the last axis of (N, C, H, W).",
    solution_code="""def tta_logits(model, x):
    return (model(x) + model(x.flip(-1))) / 2""",
)  # fmt: skip
EXERCISES = [q1, q2]

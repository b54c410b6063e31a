"""Checked exercises of notebook 02 (training on CIFAR-10): accuracy by hand, and
SimpleCNN with batch normalisation."""

from __future__ import annotations

import torch
from torch import nn

from .base import Exercise, LearnerError, Result, call, model_device, wrong


class _Probe(nn.Module):
    """Logits = its input, plus heavy dropout in training mode; records how it was called."""

    def __init__(self) -> None:
        super().__init__()
        self.drop = nn.Dropout(0.9)
        self.calls: list[tuple[bool, bool]] = []  # (training, gradients on)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls.append((self.training, torch.is_grad_enabled()))
        return self.drop(x)


def _batches() -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Batches of 4, 4 and 2 images: 4, 2 and 0 right, so 6 of 10 (0.6); the mean of the
    batch accuracies would be 0.5."""
    generator = torch.Generator().manual_seed(0)
    logits = torch.rand(10, 10, generator=generator) + torch.eye(10)[torch.arange(10) % 10] * 2
    truth = logits.argmax(1)
    labels = truth.clone()
    for wrong_one in (4, 5, 8, 9):
        labels[wrong_one] = (truth[wrong_one] + 1) % 10
    return [(logits[0:4], labels[0:4]), (logits[4:8], labels[4:8]), (logits[8:10], labels[8:10])]


def _check_accuracy(answer) -> Result:
    if not callable(answer):
        return wrong("answer with your function itself: accuracy, not accuracy(model, loader)")
    model = _Probe().train()  # as a training loop leaves it
    value = call(answer, model, _batches(), what="your accuracy function")
    if value is None:
        return wrong("your function returned None: did you forget `return`?")
    try:
        value = float(value)
    except (TypeError, ValueError):
        return wrong(f"your function returned a {type(value).__name__}; return one number")
    if any(training for training, _ in model.calls):
        return wrong("the model was in training mode when it predicted: dropout was still "
                     "switching units off at random. Call model.eval() first")  # fmt: skip
    if any(grad for _, grad in model.calls):
        return wrong("the forward passes recorded gradients: wrap the loop in torch.no_grad() "
                     "(or torch.inference_mode()); it saves memory and time")  # fmt: skip
    if abs(value - 60) < 1e-6:
        return wrong("60 is a percentage; return a fraction (0.6) and format it with :.1%")
    if abs(value - 0.5) < 1e-6:
        return wrong("that is the mean of the batch accuracies, but the last batch is smaller: "
                     "count right answers and images over all batches, then divide once")  # fmt: skip
    if abs(value - 0.6) > 1e-6:
        return wrong(f"{value} is not the share of right answers; compare logits.argmax(1) "
                     "with the labels and divide by the number of images")  # fmt: skip
    return Result(True, "0.6: eval mode, no gradients, and counted over all images. This is "
                        "what evaluate() does for you.")  # fmt: skip


def _check_batchnorm(answer) -> Result:
    if not isinstance(answer, nn.Module):
        return wrong("answer with the model itself (an nn.Module)")
    convs = [m for m in answer.modules() if isinstance(m, nn.Conv2d)]
    norms = [m for m in answer.modules() if isinstance(m, nn.BatchNorm2d)]
    if any(isinstance(m, nn.BatchNorm1d) for m in answer.modules()) and not norms:
        return wrong("BatchNorm1d is for flat features; after a convolution use "
                     "nn.BatchNorm2d(channels)")  # fmt: skip
    if not norms:
        return wrong("there is no nn.BatchNorm2d in the model: add one after each convolution")
    answer.train()
    try:
        out = call(answer, torch.rand(4, 3, 32, 32, device=model_device(answer)), what="your model")
    except LearnerError as error:
        if "running_mean should contain" in str(error) or "weight should contain" in str(error):
            return wrong("a BatchNorm2d has the wrong size: its num_features must equal the "
                         "out_channels of the convolution before it")  # fmt: skip
        raise
    if tuple(getattr(out, "shape", ())) != (4, 10):
        return wrong("the model must still give (N, 10) logits for 32-pixel images")
    if len(norms) < len(convs):
        return wrong(f"{len(convs)} convolutions but {len(norms)} BatchNorm2d: give each "
                     "convolution its own")  # fmt: skip
    note = ""
    if any(c.bias is not None for c in convs):
        note = " (A convolution before BatchNorm needs no bias: BatchNorm's shift replaces it, so bias=False saves a few weights.)"  # fmt: skip
    return Result(True, "a BatchNorm2d after every convolution. It keeps each layer's inputs "
                        "centred, so larger learning rates train stably." + note)  # fmt: skip


q1 = Exercise(
    "02", 1, "accuracy, by hand", _check_accuracy,
    hint_text="Three things: model.eval(), torch.no_grad(), and count right answers and "
    "images over every batch before dividing (the last batch can be smaller).",
    solution_code="""import torch

def accuracy(model, loader):
    model.eval()
    right = seen = 0
    with torch.no_grad():
        for images, labels in loader:
            right += (model(images).argmax(1) == labels).sum().item()
            seen += len(labels)
    return right / seen""",
)  # fmt: skip
q2 = Exercise(
    "02", 2, "batch normalisation in SimpleCNN", _check_batchnorm,
    hint_text="After each nn.Conv2d(c_in, c_out, ...) put nn.BatchNorm2d(c_out), before the "
    "ReLU. The convolution can drop its bias (bias=False).",
    solution_code="""from torch import nn

def block(c_in, c_out):
    return [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out),
            nn.ReLU(), nn.MaxPool2d(2)]

my_bn_cnn = nn.Sequential(*block(3, 32), *block(32, 64), *block(64, 128), nn.Flatten(),
                          nn.Linear(128 * 4 * 4, 512), nn.ReLU(), nn.Linear(512, 10))""",
)  # fmt: skip
EXERCISES = [q1, q2]

"""Checked exercises of notebook 01 (CNN basics): predict shapes, and a network for
64-pixel images."""

from __future__ import annotations

import torch
from torch import nn

from .base import Exercise, LearnerError, Result, call, model_device, wrong

_SHAPES = {"a": (8, 16, 28, 28), "b": (8, 16, 14, 14), "c": (8, 32, 7, 7)}


def _as_shape(key: str, value) -> tuple[int, ...]:
    try:
        return tuple(int(n) for n in value)
    except (TypeError, ValueError):
        raise LearnerError(f"({key}): {value!r} is not a shape; write a tuple such as "
                           "(8, 16, 30, 30)") from None  # fmt: skip


def _diagnose(key: str, got: tuple[int, ...], want: tuple[int, ...]) -> str:
    if len(got) != 4:
        return f"({key}) has {len(got)} numbers; a batch of images has four, (N, C, H, W)"
    if got == (want[0], want[2], want[3], want[1]):
        return f"({key}) is channels-last; PyTorch puts the channels second: (N, C, H, W)"
    if got[0] != want[0]:
        return f"({key}): the batch size does not change through a layer; it stays 8"
    if got[1] != want[1]:
        return f"({key}): a layer's output has as many channels as its out_channels"
    if key == "a" and got[2:] == (32, 32):
        return ("(a): without padding a 5x5 kernel cannot be centred on the two border pixels "
                "of each side, so the maps shrink: 32 - 5 + 1")  # fmt: skip
    if key == "c" and got[2] == 6:
        return "(c): you left out the padding: floor((14 + 2*1 - 3) / 2) + 1"
    if key == "c" and got[2] == 14:
        return "(c): stride 2 moves the kernel two pixels at a time, which halves the size"
    if key == "b" and got[2] == 28:
        return "(b): a 2x2 max-pool with its default stride 2 halves height and width"
    return (f"({key}): the height and width are off; use n_out = floor((n + 2p - k) / s) + 1, "
            "starting from the previous layer's output")  # fmt: skip


def _check_shapes(answer) -> Result:
    if not isinstance(answer, dict) or set(answer) != set(_SHAPES):
        return wrong("answer with a dict of three shapes: {'a': (...), 'b': (...), 'c': (...)}")
    for key, want in _SHAPES.items():
        got = _as_shape(key, answer[key])
        if got != want:
            return wrong(_diagnose(key, got, want))
    return Result(True, "all three shapes. Predicting shapes is what lets you size the first "
                        "Linear layer of a network without trial and error.")  # fmt: skip


def _check_net64(answer) -> Result:
    if not isinstance(answer, nn.Module):
        return wrong("answer with the network itself, an nn.Module (for example an "
                     "nn.Sequential or SimpleCNN(input_size=64))")  # fmt: skip
    answer.eval()
    try:
        with torch.no_grad():
            out = call(
                answer, torch.zeros(4, 3, 64, 64, device=model_device(answer)), what="your network"
            )
    except LearnerError as error:
        if "mat1 and mat2 shapes cannot be multiplied" in str(error):
            return wrong("the first Linear layer is still sized for 32-pixel images: after "
                         "three 2x2 poolings a 64-pixel image is 8x8, not 4x4, so it needs "
                         "128 * 8 * 8 inputs (or put nn.AdaptiveAvgPool2d(4) before Flatten)")  # fmt: skip
        raise
    if not isinstance(out, torch.Tensor):
        return wrong(f"the network returned a {type(out).__name__}, not a tensor of logits")
    if out.shape[0] != 4:
        return wrong(f"4 images went in and {out.shape[0]} rows came out: a view(-1, 128 * 4 * 4) "
                     "folds each 64-pixel image into several rows. Flatten per image "
                     "(x.flatten(1)) and size the Linear layer for 8x8 maps")  # fmt: skip
    if tuple(out.shape) != (4, 10):
        return wrong(f"the output is {tuple(out.shape)}; it must be (4, 10): one score per class")
    return Result(True, "(4, 10). Only the first Linear layer depends on the image size; the "
                        "convolutions work on any size.")  # fmt: skip


q1 = Exercise(
    "01", 1, "predict the shapes", _check_shapes,
    hint_text="Work layer by layer with n_out = floor((n + 2p - k) / s) + 1, starting from 32. "
    "A 2x2 max-pool halves height and width; the channels are the layer's out_channels.",
    solution_code="""my_shapes = {"a": (8, 16, 28, 28),   # (32 - 5) + 1 = 28
             "b": (8, 16, 14, 14),   # pooling halves it
             "c": (8, 32, 7, 7)}     # (14 + 2 - 3) // 2 + 1 = 7""",
)  # fmt: skip
q2 = Exercise(
    "01", 2, "a network for 64x64 images", _check_net64,
    hint_text="Only one layer depends on the image size. After three 2x2 poolings, how "
    "large is a 64-pixel image, and how many numbers does Flatten produce?",
    solution_code="""from torch import nn

my_net = nn.Sequential(
    nn.Conv2d(3, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
    nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
    nn.Conv2d(64, 128, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
    nn.Flatten(), nn.Linear(128 * 8 * 8, 512), nn.ReLU(), nn.Linear(512, 10),
)""",
)  # fmt: skip
EXERCISES = [q1, q2]

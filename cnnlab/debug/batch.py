"""Check a batch of images and labels before it reaches the model and the loss."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from ..errors import InputShapeError


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a batch: what, why it matters, and the fix."""

    kind: str
    cause: str
    fix: str
    severity: str = "error"  # "error": training will fail or be wrong; "warning": it will suffer

    def __str__(self) -> str:
        return f"[{self.severity}] {self.kind}: {self.cause} Fix: {self.fix}"


@dataclass
class BatchReport:
    """Everything :func:`check_batch` found; empty means the batch looks right."""

    shape: tuple[int, ...]
    dtype: str
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not any(p.severity == "error" for p in self.problems)

    @property
    def kinds(self) -> list[str]:
        return [p.kind for p in self.problems]

    def __str__(self) -> str:
        head = f"batch {self.shape} {self.dtype}: "
        if not self.problems:
            return head + "no problems found"
        return (
            head + f"{len(self.problems)} problem(s)\n" + "\n".join(f"  {p}" for p in self.problems)
        )

    def raise_if_bad(self) -> None:
        """Raise ``InputShapeError`` listing every error-level problem."""
        if not self.ok:
            raise InputShapeError(str(self))


def _image_problems(x: torch.Tensor, channels: int) -> list[Problem]:
    out = []
    if x.dim() == 3:
        out.append(Problem("no batch dimension", f"images have shape {tuple(x.shape)}: one "
                           "image, not a batch.", "use x.unsqueeze(0)."))  # fmt: skip
    elif x.dim() != 4:
        out.append(Problem("not a batch of images", f"shape {tuple(x.shape)} has {x.dim()} "
                           "dimensions; a batch of images has 4: (N, C, H, W).",
                           "check the dataset's transform returns (C, H, W) tensors."))  # fmt: skip
    elif x.shape[1] != channels and x.shape[-1] == channels:
        out.append(Problem("channels-last (NHWC)", f"shape {tuple(x.shape)} has {channels} "
                           "channels last; PyTorch layers want (N, C, H, W).",
                           "x.permute(0, 3, 1, 2), or transforms.ToTensor()."))  # fmt: skip
    elif x.shape[1] != channels:
        out.append(Problem("channel count", f"{x.shape[1]} channel(s), expected {channels}.",
                           "convert grayscale images with image.convert('RGB'), or build the "
                           "model for this many channels."))  # fmt: skip
    if x.dtype == torch.float64:
        out.append(Problem("float64 images", "NumPy arrays are float64; model weights are "
                           "float32 ('Input type (double) and bias type (float) should be the "
                           "same').", "x.float(), or torch.from_numpy(a).float()."))  # fmt: skip
    elif not torch.is_floating_point(x):
        out.append(Problem("integer images", f"dtype {x.dtype}: raw 0-255 pixels.",
                           "transforms.ToTensor() (scales to [0, 1]), or x.float() / 255, "
                           "then normalise."))  # fmt: skip
    if torch.is_floating_point(x) and x.numel():
        finite = torch.isfinite(x)
        if not finite.all():
            bad = int((~finite).sum())
            out.append(Problem("NaN/Inf in images", f"{bad} value(s) are NaN or infinite.",
                               "find the broken images (a division by a zero std, a corrupt "
                               "file) and fix or drop them."))  # fmt: skip
        else:
            low, high, std = float(x.min()), float(x.max()), float(x.float().std())
            if high > 2.0 and low >= 0:
                out.append(Problem("0-255 pixel values", f"values run from {low:.0f} to "
                                   f"{high:.0f}: unscaled pixels make training slow and "
                                   "unstable.", "divide by 255 and normalise "
                                   "(transforms.Normalize(mean, std))."))  # fmt: skip
            elif low >= 0 and high <= 1.0:
                out.append(Problem("not normalised", f"values in [{low:.2f}, {high:.2f}]: "
                                   "scaled but not centred.", "add transforms.Normalize(mean, "
                                   "std) with the data set's statistics (cnnlab.data presets "
                                   "do).", "warning"))  # fmt: skip
            elif std < 1e-6:
                out.append(
                    Problem(
                        "constant images",
                        "every value is the same.",
                        "check the transform and the loader.",
                        "warning",
                    )
                )
    return out


def _label_problems(y: torch.Tensor, n: int | None, num_classes: int | None) -> list[Problem]:
    out = []
    if y.dim() == 2 and y.shape[1] == 1:
        out.append(Problem("labels of shape (N, 1)", f"labels have shape {tuple(y.shape)}.",
                           "y.squeeze(1): CrossEntropyLoss wants class indices of shape (N,)."))  # fmt: skip
    elif y.dim() == 2 and torch.is_floating_point(y):
        if num_classes is not None and y.shape[1] != num_classes:
            out.append(Problem("label width", f"{y.shape[1]} columns of class probabilities "
                               f"for {num_classes} classes.", "one column per class."))  # fmt: skip
        return out  # (N, C) probabilities are valid targets for CrossEntropyLoss
    elif y.dim() != 1:
        out.append(Problem("label shape", f"labels have shape {tuple(y.shape)}.",
                           "class indices of shape (N,)."))  # fmt: skip
    if n is not None and y.shape[0] != n:
        out.append(Problem("label count", f"{y.shape[0]} labels for {n} images.",
                           "images and labels must come from the same items; check the "
                           "dataset and any reshaping (x.view(-1, ...)) in the model."))  # fmt: skip
    if torch.is_floating_point(y):
        out.append(Problem("float labels", f"labels have dtype {y.dtype} ('expected target "
                           "dtype to be Long').", "y.long() (class indices are integers)."))  # fmt: skip
        if not torch.isfinite(y).all():
            out.append(Problem("NaN labels", "some labels are NaN or infinite.",
                               "fix the label source."))  # fmt: skip
    elif y.dtype != torch.long:
        out.append(Problem("label dtype", f"labels have dtype {y.dtype}; CrossEntropyLoss "
                           "wants int64 ('expected target dtype to be Long').", "y.long()."))  # fmt: skip
    if num_classes is not None and y.numel() and torch.isfinite(y.float()).all():
        low, high = int(y.min()), int(y.max())
        if low < 0 or high >= num_classes:
            out.append(Problem("labels out of range", f"labels run from {low} to {high}, but "
                               f"the model has {num_classes} outputs: valid labels are "
                               f"0..{num_classes - 1}. On CPU this is 'IndexError: Target "
                               f"{high} is out of bounds'; on a GPU a 'device-side assert'.",
                               "set num_classes to the number of classes, and number classes "
                               "from 0 (subtract 1 from 1-based labels)."))  # fmt: skip
    return out


def check_batch(
    x,
    y=None,
    num_classes: int | None = None,
    channels: int = 3,
) -> BatchReport:
    """Check a batch of images ``x`` and labels ``y`` and report every problem with its fix.

    Checks the layout (NCHW), dtype, value range (raw pixels, normalised or not),
    NaN/Inf, and the labels' dtype, shape, count and range. Nothing is raised: read the
    report, or call ``report.raise_if_bad()``.

    Example:
        >>> report = check_batch(torch.rand(4, 32, 32, 3) * 255, torch.tensor([0, 1, 2, 10]),
        ...                      num_classes=10)
        >>> report.kinds
        ['channels-last (NHWC)', '0-255 pixel values', 'labels out of range']
        >>> check_batch(torch.randn(4, 3, 32, 32), torch.tensor([0, 1, 2, 9]), 10).ok
        True
    """
    if isinstance(x, np.ndarray):
        report = BatchReport(tuple(x.shape), f"numpy {x.dtype}")
        report.problems.append(Problem("NumPy array", "the model needs a torch.Tensor.",
                                       "torch.from_numpy(x).float(), or transforms.ToTensor() "
                                       "for images in HWC layout."))  # fmt: skip
        x = torch.from_numpy(x)
    else:
        report = BatchReport(tuple(x.shape), str(x.dtype))
    report.problems += _image_problems(x, channels)
    if y is not None:
        y = torch.from_numpy(y) if isinstance(y, np.ndarray) else torch.as_tensor(y)
        n = x.shape[0] if x.dim() == 4 else None
        report.problems += _label_problems(y, n, num_classes)
    return report

"""Cheap checks on batches and labels, run before a mistake turns into a cryptic error.

Each check raises with a message that says what was expected, what was found, and
what to do about it.
"""

from __future__ import annotations

import torch

from .errors import InputShapeError, LabelError, NonFiniteInputError


def check_images(
    x: torch.Tensor,
    channels: int,
    size: int | tuple[int, int] | None = None,
    model_name: str = "the model",
) -> None:
    """Check that ``x`` is a float batch ``(N, channels, H, W)`` of the expected size.

    Example:
        >>> check_images(torch.zeros(8, 3, 32, 32), channels=3, size=32)
        >>> check_images(torch.zeros(8, 32, 32, 3), channels=3, size=32)
        Traceback (most recent call last):
        ...
        cnnlab.errors.InputShapeError: ... got (8, 32, 32, 3): it looks channels-last (NHWC)...
    """
    expected_hw = (size, size) if isinstance(size, int) else size
    want = (
        f"(N, {channels}, {expected_hw[0]}, {expected_hw[1]})"
        if expected_hw
        else f"(N, {channels}, H, W)"
    )
    shape = tuple(x.shape)
    head = f"{model_name} expects images of shape {want}, got {shape}"
    if x.dim() == 3 and x.shape[0] == channels:
        raise InputShapeError(
            f"{head}: this is a single image without the batch dimension; use x.unsqueeze(0)."
        )
    if x.dim() != 4:
        raise InputShapeError(f"{head}: a batch has 4 dimensions (batch, channels, height, width).")
    if x.shape[1] != channels:
        if x.shape[-1] == channels:
            raise InputShapeError(
                f"{head}: it looks channels-last (NHWC); use x.permute(0, 3, 1, 2), "
                "or transforms.ToTensor(), which gives channels-first tensors."
            )
        if x.shape[1] == 1 and channels == 3:
            raise InputShapeError(
                f"{head}: these are 1-channel (grayscale) images; convert them to RGB "
                "(image.convert('RGB') or transforms.Grayscale(num_output_channels=3))."
            )
        raise InputShapeError(f"{head}: the model was built for {channels} input channel(s).")
    if not torch.is_floating_point(x):
        raise InputShapeError(
            f"{model_name} expects floating-point images, got dtype {x.dtype}: "
            "use transforms.ToTensor() (scales to [0, 1]) or x.float() / 255."
        )
    if expected_hw is not None and tuple(x.shape[-2:]) != tuple(expected_hw):
        h, w = expected_hw
        raise InputShapeError(
            f"{head}: {model_name} was built for {h}x{w} inputs; resize your images "
            f"(transforms.Resize(({h}, {w}))) or build the model for "
            f"{x.shape[-2]}x{x.shape[-1]} inputs (e.g. input_size={x.shape[-1]})."
        )


def check_labels(y: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Check class-index labels and return them as ``torch.long``.

    Labels must be integers in ``[0, num_classes)``. Checking here, on the CPU,
    turns CUDA's opaque "device-side assert triggered" into a readable message.

    Example:
        >>> check_labels(torch.tensor([0, 9]), num_classes=10)
        tensor([0, 9])
        >>> check_labels(torch.tensor([3, 10]), num_classes=10)
        Traceback (most recent call last):
        ...
        cnnlab.errors.LabelError: labels must be in [0, 10) for 10 classes, found 10...
    """
    if torch.is_floating_point(y) or y.is_complex() or y.dtype == torch.bool:
        raise LabelError(
            f"labels have dtype {y.dtype}; CrossEntropyLoss expects class indices of dtype "
            "torch.long: convert them with y.long() (or return int labels from your data set)."
        )
    if y.dim() != 1:
        raise LabelError(
            f"labels should be a 1-D tensor of class indices, got shape {tuple(y.shape)}: "
            "one-hot labels can be turned into indices with y.argmax(dim=1)."
        )
    if y.numel():
        lo, hi = int(y.min()), int(y.max())
        if lo < 0 or hi >= num_classes:
            bad = lo if lo < 0 else hi
            raise LabelError(
                f"labels must be in [0, {num_classes}) for {num_classes} classes, found {bad}: "
                "check the model's number of outputs (num_classes) and how the data set "
                "numbers its classes (labels start at 0), or the data is not the data set "
                "the model was made for (compare its classes with the model's)."
            )
    return y.long()


def check_inputs(x: torch.Tensor, where: str = "the batch") -> torch.Tensor:
    """Check a batch of model inputs where it enters ``fit``, ``evaluate`` or a prediction:
    float32 and finite. Returns it, with float64 converted to float32.

    float64 is what NumPy makes by default, so it is converted (a learner would expect
    it to work); integer images need scaling, and NaN or infinity would silently turn
    every loss and probability into NaN, so both are refused with the fix. Called on
    the host (before the copy to a GPU), so it costs no device synchronisation.

    Example:
        >>> check_inputs(torch.zeros(2, 3, 4, 4, dtype=torch.float64)).dtype
        torch.float32
        >>> check_inputs(torch.tensor([[float("nan")]]), where="batch 3 of the test data")
        Traceback (most recent call last):
        ...
        cnnlab.errors.NonFiniteInputError: batch 3 of the test data holds 1 NaN or infinite value(s)...
    """
    if x.dtype == torch.float64:
        x = x.float()
    elif not torch.is_floating_point(x):
        raise InputShapeError(
            f"{where} has dtype {x.dtype}; models take float32 images: use "
            "transforms.ToTensor() (which scales 0..255 to 0..1) or x.float() / 255."
        )
    elif x.dtype != torch.float32:
        raise InputShapeError(
            f"{where} has dtype {x.dtype}; the model's weights are float32. Pass float32 "
            "images and let mixed precision (precision='auto' or 'fp16') choose 16-bit "
            "arithmetic where it is safe."
        )
    bad = x.numel() - int(torch.isfinite(x).sum())
    if bad:
        raise NonFiniteInputError(
            f"{where} holds {bad} NaN or infinite value(s) of {x.numel():,}: a model fed "
            "NaN outputs NaN. Look for a division by zero in your data set or transform "
            "(a std of 0 in Normalize, an empty image), or find the bad items with "
            "cnnlab.debug.check_batch."
        )
    return x

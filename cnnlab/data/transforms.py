"""Transform presets: what a CIFAR-10 image goes through before the model sees it.

The statistics are per-channel means and standard deviations of the official
CIFAR-10 training set (pixels scaled to [0, 1]). Normalising with them centres each
channel near 0 with unit spread, which keeps early activations and gradients in a
range where a fixed learning rate works.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torchvision import transforms as T

CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def cifar10_train_transform(
    mean: Sequence[float] = CIFAR10_MEAN,
    std: Sequence[float] = CIFAR10_STD,
    crop_padding: int = 4,
    flip: bool = True,
) -> T.Compose:
    """Training preset: random 32-px crop of a 4-px padded image, random flip, normalise.

    Example:
        >>> from PIL import Image
        >>> x = cifar10_train_transform()(Image.new("RGB", (32, 32)))
        >>> tuple(x.shape)
        (3, 32, 32)
    """
    steps: list = [T.RandomCrop(32, padding=crop_padding, padding_mode="reflect")]
    if flip:
        steps.append(T.RandomHorizontalFlip())
    steps += [T.ToTensor(), T.Normalize(mean, std)]
    return T.Compose(steps)


def cifar10_eval_transform(
    mean: Sequence[float] = CIFAR10_MEAN, std: Sequence[float] = CIFAR10_STD
) -> T.Compose:
    """Evaluation preset: no randomness, only tensor conversion and normalisation.

    Example:
        >>> from PIL import Image
        >>> x = cifar10_eval_transform()(Image.new("RGB", (32, 32), "white"))
        >>> round(float(x[0, 0, 0]), 2)  # (1 - 0.4914) / 0.2470
        2.06
    """
    return T.Compose([T.ToTensor(), T.Normalize(mean, std)])


def denormalize(
    images: torch.Tensor,
    mean: Sequence[float] = CIFAR10_MEAN,
    std: Sequence[float] = CIFAR10_STD,
) -> torch.Tensor:
    """Undo ``Normalize``: map normalised ``(N, C, H, W)`` or ``(C, H, W)`` back to [0, 1].

    Example:
        >>> x = torch.zeros(3, 2, 2)  # the mean colour, normalised
        >>> denormalize(x)[:, 0, 0]
        tensor([0.4914, 0.4822, 0.4465])
    """
    shape = (-1, 1, 1)
    m = torch.as_tensor(mean, dtype=images.dtype, device=images.device).view(shape)
    s = torch.as_tensor(std, dtype=images.dtype, device=images.device).view(shape)
    return (images * s + m).clamp(0, 1)

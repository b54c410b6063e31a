"""Transform presets: what an image goes through before the model sees it.

Two families. **CIFAR-10** images are all 32 x 32: training crops a 32-px window out of
a 4-px padded copy (a shift of a few pixels) and flips it. **Photos** come in every size
and shape, so a crop of a fixed size without a resize would take a small patch of a large
photo: training takes a random resized crop (a random part of at least ``min_scale`` of
the photo, resized to ``size``), evaluation resizes the shorter side to ``size / 0.875``
and takes the centre ``size`` x ``size`` (:class:`cnnlab.preprocessing.Preprocessing`).

The statistics are per-channel means and standard deviations of the official CIFAR-10
training set, and of ImageNet for photos and pretrained models (pixels scaled to
[0, 1]). Normalising with them centres each channel near 0 with unit spread, which keeps
early activations and gradients in a range where a fixed learning rate works.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torchvision import transforms as T

CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
INTERPOLATIONS = {"nearest": T.InterpolationMode.NEAREST, "bilinear": T.InterpolationMode.BILINEAR,
                  "bicubic": T.InterpolationMode.BICUBIC}  # fmt: skip


def eval_resize(size: int) -> int:
    """The shorter side to resize to before a centre crop of ``size``: ``size / 0.875``,
    the ImageNet habit (256 for 224), so the crop keeps the central 87.5% of the picture.

    Example:
        >>> eval_resize(224), eval_resize(32)
        (256, 37)
    """
    return round(size / 0.875)


def eval_transform(size: int, mean: Sequence[float], std: Sequence[float],
                   resize: int | None = None, interpolation: str = "bilinear") -> T.Compose:  # fmt: skip
    """Resize the shorter side to ``resize`` (default ``size``), centre-crop ``size``,
    tensor, normalise: what :class:`cnnlab.preprocessing.Preprocessing` applies.

    Example:
        >>> from PIL import Image
        >>> eval_transform(32, CIFAR10_MEAN, CIFAR10_STD)(Image.new("RGB", (64, 48))).shape
        torch.Size([3, 32, 32])
    """
    return T.Compose([
        T.Resize(resize or size, interpolation=INTERPOLATIONS[interpolation], antialias=True),
        T.CenterCrop(size),
        T.ToTensor(),
        T.Normalize(mean, std),
    ])  # fmt: skip


def find_normalize(loader: object) -> tuple[tuple[float, ...], tuple[float, ...]] | None:
    """The ``(mean, std)`` a loader's images were normalised with: a TensorLoader's own,
    or those of the ``Normalize`` in its data set's transform (None when not found).

    Example:
        >>> find_normalize(torch.utils.data.DataLoader([]))  # no transform to read
    """
    mean, std = getattr(loader, "mean", None), getattr(loader, "std", None)
    if isinstance(mean, torch.Tensor) and isinstance(std, torch.Tensor):
        return tuple(mean.flatten().tolist()), tuple(std.flatten().tolist())
    dataset = getattr(loader, "dataset", None)
    while dataset is not None and not hasattr(dataset, "transform"):
        dataset = getattr(dataset, "dataset", None)  # through Subset wrappers
    pending = [getattr(dataset, "transform", None)]
    while pending:
        step = pending.pop()
        if isinstance(step, T.Normalize):
            return tuple(map(float, step.mean)), tuple(map(float, step.std))
        pending.extend(getattr(step, "transforms", []) or [])
    return None


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


def photo_train_transform(
    size: int = 224,
    *,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
    min_scale: float = 0.35,
    flip: bool = True,
    vertical_flip: bool = False,
    rotation: float = 0,
    color_jitter: tuple[float, float, float, float] | None = None,
    grayscale: float = 0.0,
    interpolation: str = "bilinear",
) -> T.Compose:
    """Training preset for photos of any size: a random resized crop of ``size`` x ``size``
    (covering ``min_scale`` to all of the photo, aspect ratio 3/4 to 4/3), a horizontal
    flip, and optionally a vertical flip, a rotation of up to ``rotation`` degrees, colour
    jitter ``(brightness, contrast, saturation, hue)`` and a ``grayscale`` probability.

    ``min_scale=0.35`` (fastai's default for fine-tuning) keeps most of the object in
    view; torchvision's ImageNet recipe uses 0.08, for long training from scratch. The
    source tutorials' flower set uses ``rotation=45, vertical_flip=True,
    color_jitter=(0.2, 0.1, 0.1, 0.1), grayscale=0.025``: right for flowers seen from
    above, wrong for scenes with an up and a down (notebook 08 shows which hurt).

    Example:
        >>> from PIL import Image
        >>> photo_train_transform(64)(Image.new("RGB", (640, 480))).shape
        torch.Size([3, 64, 64])
    """
    mode = INTERPOLATIONS[interpolation]
    steps: list = []
    if rotation:
        steps.append(T.RandomRotation(rotation, interpolation=mode))
    steps.append(T.RandomResizedCrop(size, scale=(min_scale, 1.0), interpolation=mode,
                                     antialias=True))  # fmt: skip
    if flip:
        steps.append(T.RandomHorizontalFlip())
    if vertical_flip:
        steps.append(T.RandomVerticalFlip())
    if color_jitter is not None:
        steps.append(T.ColorJitter(*color_jitter))
    if grayscale:
        steps.append(T.RandomGrayscale(grayscale))
    steps += [T.ToTensor(), T.Normalize(mean, std)]
    return T.Compose(steps)


def photo_eval_transform(
    size: int = 224,
    *,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
    resize: int | None = None,
    interpolation: str = "bilinear",
) -> T.Compose:
    """Evaluation preset for photos: resize the shorter side to ``resize`` (default
    ``size / 0.875``: 256 for 224), centre-crop ``size`` x ``size``, normalise. The same
    as ``Preprocessing(size, mean, std, resize, interpolation).transform()``.

    Example:
        >>> from PIL import Image
        >>> photo_eval_transform(224)(Image.new("RGB", (480, 640))).shape
        torch.Size([3, 224, 224])
    """
    return eval_transform(size, mean, std, resize or eval_resize(size), interpolation)


def weights_settings(weights) -> dict:
    """The preprocessing of a torchvision weights enum member's own ``transforms()`` (what
    torchvision evaluates it with: resize, centre crop, interpolation, mean, std), as the
    keyword arguments of :class:`cnnlab.preprocessing.Preprocessing`.

    Example:
        >>> from torchvision.models import ResNet18_Weights
        >>> weights_settings(ResNet18_Weights.DEFAULT)["resize"]
        256
    """
    t = weights.transforms()
    interpolation = next(k for k, v in INTERPOLATIONS.items() if v == t.interpolation)
    return {"size": int(t.crop_size[0]), "mean": tuple(t.mean), "std": tuple(t.std),
            "resize": int(t.resize_size[0]), "interpolation": interpolation}  # fmt: skip


def transforms_from_weights(weights, **augmentation) -> tuple[T.Compose, T.Compose]:
    """``(train, eval)`` photo transforms for a torchvision weights enum member: its crop
    size, resize, interpolation, mean and std (299/342 for Inception v3, bicubic for
    EfficientNet). ``augmentation`` goes to :func:`photo_train_transform`.

    Example:
        >>> from torchvision.models import ResNet18_Weights
        >>> train_tf, eval_tf = transforms_from_weights(ResNet18_Weights.DEFAULT)
        >>> eval_tf.transforms[0].size, eval_tf.transforms[1].size
        (256, (224, 224))
    """
    s = weights_settings(weights)
    train = photo_train_transform(s["size"], mean=s["mean"], std=s["std"],
                                  interpolation=s["interpolation"], **augmentation)  # fmt: skip
    return train, eval_transform(**s)


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

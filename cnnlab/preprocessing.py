"""How images are prepared for a model, recorded in one object from training to serving.

A model only works on images prepared the way its training images were: the same
resize, crop, interpolation and normalisation. :class:`Preprocessing` records them; it
is saved with the weights (``Predictor.save``, ``cnnlab train``), and evaluation,
``Predictor``, the ``cnnlab`` command, the web API and ONNX export all rebuild their
transform from it, so training-time evaluation and serving cannot disagree.

Example:
    >>> pre = Preprocessing(224, resize=256)
    >>> pre.transform()(Image.new("RGB", (640, 480))).shape
    torch.Size([3, 224, 224])
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from torchvision import transforms as T

from .data.transforms import (
    CIFAR10_MEAN,
    CIFAR10_STD,
    INTERPOLATIONS,
    eval_resize,
    eval_transform,
    photo_train_transform,
    weights_settings,
)


@dataclass(frozen=True)
class Preprocessing:
    """Resize the shorter side to ``resize`` (default: ``size``), centre-crop ``size`` x
    ``size``, scale to [0, 1], normalise with ``mean`` and ``std``.

    Args:
        size: the side of the square the model sees (32 for CIFAR-10, 224 or 299 for
            ImageNet models).
        resize: the shorter side before the crop; ``None`` resizes straight to ``size``
            (then the crop only trims the longer side).
        interpolation: ``"bilinear"`` (most models), ``"bicubic"`` (EfficientNet) or
            ``"nearest"``.

    Example:
        >>> Preprocessing(32).transform()(Image.new("RGB", (64, 48))).shape
        torch.Size([3, 32, 32])
        >>> Preprocessing.from_dict(Preprocessing(299, resize=342).as_dict()).resize
        342
    """

    size: int = 32
    mean: tuple[float, ...] = CIFAR10_MEAN
    std: tuple[float, ...] = CIFAR10_STD
    resize: int | None = None
    interpolation: str = "bilinear"

    def __post_init__(self) -> None:
        if self.interpolation not in INTERPOLATIONS:
            raise ValueError(f"interpolation must be one of {', '.join(INTERPOLATIONS)}, "
                             f"got {self.interpolation!r}")  # fmt: skip
        if self.resize is not None and self.resize < self.size:
            raise ValueError(f"resize={self.resize} is smaller than the crop size={self.size}: "
                             "the crop would be padded with black")  # fmt: skip
        object.__setattr__(self, "mean", tuple(float(m) for m in self.mean))
        object.__setattr__(self, "std", tuple(float(s) for s in self.std))

    def transform(self) -> T.Compose:
        """The evaluation transform for one PIL image: resize, centre crop, tensor, normalise.

        Example:
            >>> Preprocessing(224, resize=256).transform()  # doctest: +ELLIPSIS
            Compose(
                Resize(size=256, interpolation=bilinear, ...)
            ...
        """
        return eval_transform(self.size, self.mean, self.std, self.resize, self.interpolation)

    def train_transform(self, **augmentation) -> T.Compose:
        """The matching training transform for photos (random resized crop of ``size``,
        flips, optional colour jitter and rotation): see
        :func:`cnnlab.data.photo_train_transform`, which takes ``augmentation``.

        Example:
            >>> Preprocessing(64).train_transform()(Image.new("RGB", (640, 480))).shape
            torch.Size([3, 64, 64])
        """
        return photo_train_transform(self.size, mean=self.mean, std=self.std,
                                     interpolation=self.interpolation, **augmentation)  # fmt: skip

    def as_dict(self) -> dict:
        """Plain values, for a checkpoint (``weights_only`` loading accepts them)."""
        return {"size": self.size, "resize": self.resize, "interpolation": self.interpolation,
                "mean": list(self.mean), "std": list(self.std)}  # fmt: skip

    @classmethod
    def from_dict(cls, d: dict) -> Preprocessing:
        """Rebuild from :meth:`as_dict` (files saved before ``resize`` existed load too)."""
        return cls(int(d["size"]), tuple(d["mean"]), tuple(d["std"]), d.get("resize"),
                   d.get("interpolation", "bilinear"))  # fmt: skip

    @classmethod
    def for_photos(cls, size: int, mean: Sequence[float], std: Sequence[float],
                   interpolation: str = "bilinear") -> Preprocessing:  # fmt: skip
        """Photos of any size and shape: resize to ``size / 0.875``, centre crop ``size``.

        Example:
            >>> Preprocessing.for_photos(224, (0.5,) * 3, (0.5,) * 3).resize
            256
        """
        return cls(size, tuple(mean), tuple(std), eval_resize(size), interpolation)

    @classmethod
    def from_weights(cls, weights) -> Preprocessing:
        """The evaluation preprocessing of a torchvision weights enum member (its
        ``transforms()``: resize, centre crop, interpolation, mean and std). The weights
        were *trained* on random resized crops of that size;
        :meth:`train_transform` gives the matching training transform.

        Example:
            >>> from torchvision.models import Inception_V3_Weights
            >>> p = Preprocessing.from_weights(Inception_V3_Weights.DEFAULT)
            >>> p.size, p.resize, p.interpolation
            (299, 342, 'bilinear')
        """
        return cls(**weights_settings(weights))


__all__ = ["INTERPOLATIONS", "Preprocessing", "eval_resize"]

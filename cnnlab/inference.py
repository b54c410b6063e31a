"""Predictions from a trained model: images in (a path, a PIL image, raw bytes, or a
batch), top-k class names and probabilities out, with the preprocessing that was stored
next to the weights, so that serving never guesses how the model was trained.

Example:
    >>> predictor = Predictor(SimpleCNN().eval(), CIFAR10_CLASSES, Preprocessing(32))
    >>> [(name, round(p, 2)) for name, p in predictor.predict(Image.new("RGB", (50, 40)), k=2)][:1]  # doctest: +SKIP
    [('frog', 0.11)]
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch import nn
from torchvision import transforms

from .checkpoints import load_checkpoint, save_checkpoint
from .data.transforms import CIFAR10_MEAN, CIFAR10_STD
from .errors import CorruptImageError
from .models import inference_copy


@dataclass(frozen=True)
class Preprocessing:
    """How images were prepared for the model: resized (shorter side) and centre-cropped
    to ``size``, scaled to [0, 1] and normalised with ``mean`` and ``std``."""

    size: int = 32
    mean: tuple[float, ...] = CIFAR10_MEAN
    std: tuple[float, ...] = CIFAR10_STD

    def transform(self) -> transforms.Compose:
        """The torchvision transform for one PIL image.

        Example:
            >>> Preprocessing(32).transform()(Image.new("RGB", (64, 48))).shape
            torch.Size([3, 32, 32])
        """
        return transforms.Compose([
            transforms.Resize(self.size),
            transforms.CenterCrop(self.size),
            transforms.ToTensor(),
            transforms.Normalize(self.mean, self.std),
        ])  # fmt: skip

    def as_dict(self) -> dict:
        return {"size": self.size, "mean": list(self.mean), "std": list(self.std)}

    @classmethod
    def from_dict(cls, d: dict) -> Preprocessing:
        return cls(int(d["size"]), tuple(d["mean"]), tuple(d["std"]))


def to_rgb(image: Image.Image) -> Image.Image:
    """Convert any PIL mode to 8-bit RGB: grayscale, palette, RGBA (composited on white)
    and 16/32-bit images (scaled down to 8 bits, not clipped).

    Example:
        >>> to_rgb(Image.new("I;16", (4, 4), 65535)).getpixel((0, 0))
        (255, 255, 255)
    """
    if image.mode == "RGB":
        return image
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        values = np.asarray(image, dtype=np.float64)
        top = 65535.0 if image.mode.startswith("I;16") else max(float(values.max()), 1.0)
        image = Image.fromarray(np.clip(values / top * 255.0, 0, 255).astype(np.uint8), "L")
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def open_image(source: str | Path | bytes | Image.Image) -> Image.Image:
    """Open a file path, raw bytes or a PIL image as 8-bit RGB, fully decoded.

    Raises :class:`~cnnlab.errors.CorruptImageError` for data that is not an image or is
    truncated, with a message that says which.

    Example:
        >>> open_image(b"not an image")
        Traceback (most recent call last):
        ...
        cnnlab.errors.CorruptImageError: the upload is not an image PIL can read ...
    """
    if isinstance(source, Image.Image):
        return to_rgb(source)
    what = f"{source}" if isinstance(source, (str, Path)) else "the upload"
    try:
        image = Image.open(io.BytesIO(source) if isinstance(source, bytes) else source)
        image.load()  # decode now: a truncated file fails here, not later
    except UnidentifiedImageError as error:
        raise CorruptImageError(f"{what} is not an image PIL can read (JPEG, PNG, ...)") from error
    except (OSError, SyntaxError, ValueError) as error:
        raise CorruptImageError(f"{what} could not be decoded, it is probably truncated or "
                                f"damaged ({error})") from error  # fmt: skip
    return to_rgb(image)


class Predictor:
    """A model in eval mode with its class names and preprocessing.

    Example:
        >>> p = Predictor(SimpleCNN(), CIFAR10_CLASSES, Preprocessing(32))
        >>> len(p.predict(Image.new("RGB", (32, 32)), k=3))
        3
    """

    def __init__(self, model: nn.Module, class_names: list[str],
                 preprocessing: Preprocessing, device: str | torch.device = "cpu") -> None:  # fmt: skip
        # a copy in eval mode on `device`: the caller's model stays where and as it was
        self.model = inference_copy(model, device)
        self.class_names = list(class_names)
        self.preprocessing = preprocessing
        self.device = torch.device(device)
        self._transform = preprocessing.transform()

    def prepare(self, source) -> torch.Tensor:
        """One input (path, bytes, PIL image) as a normalised ``(C, H, W)`` tensor."""
        return self._transform(open_image(source))

    @torch.no_grad()
    def predict_batch(self, images: torch.Tensor, k: int = 5) -> list[list[tuple[str, float]]]:
        """Top-``k`` ``(class name, probability)`` for each image of a prepared batch."""
        probs = self.model(images.to(self.device)).softmax(dim=1).cpu()
        values, indices = probs.topk(min(k, probs.shape[1]), dim=1)
        return [[(self.class_names[i], round(float(p), 6)) for p, i in zip(vs, ix, strict=True)]
                for vs, ix in zip(values.tolist(), indices.tolist(), strict=True)]  # fmt: skip

    def predict(self, source, k: int = 5) -> list[tuple[str, float]]:
        """Top-``k`` ``(class name, probability)`` for one image (path, bytes or PIL)."""
        return self.predict_batch(self.prepare(source).unsqueeze(0), k)[0]

    def save(self, path: str | Path, model_spec: dict) -> Path:
        """Save weights, class names, preprocessing and ``model_spec`` (how to rebuild the
        network, e.g. ``{"name": "SimpleCNN", "kwargs": {"num_classes": 10}}``)."""
        return save_checkpoint(path, self.model, extra={
            "class_names": self.class_names,
            "preprocessing": self.preprocessing.as_dict(),
            "model_spec": model_spec,
        })  # fmt: skip

    @classmethod
    def load(cls, path: str | Path, device: str | torch.device = "cpu") -> Predictor:
        """Rebuild a predictor from :meth:`save`'s file (safely: ``weights_only=True``)."""
        from .checkpoints import safe_load

        extra = safe_load(path)["extra"]
        model = build_model(extra["model_spec"])
        load_checkpoint(path, model)
        return cls(model, extra["class_names"], Preprocessing.from_dict(extra["preprocessing"]),
                   device)  # fmt: skip


def build_model(spec: dict) -> nn.Module:
    """Build a network from a plain description: a cnnlab model (``SimpleCNN``,
    ``SmallResNet``) or a torchvision architecture, with keyword arguments.

    Example:
        >>> build_model({"name": "SmallResNet", "kwargs": {"num_classes": 5, "width": 8}}).head[-1]
        Linear(in_features=64, out_features=5, bias=True)
    """
    from . import models

    name, kwargs = spec["name"], dict(spec.get("kwargs", {}))
    if name in ("SimpleCNN", "SmallResNet"):
        return getattr(models, name)(**kwargs)
    from .transfer import build_transfer_model

    return build_transfer_model(name, weights=None, **kwargs).model


__all__ = ["Predictor", "Preprocessing", "build_model", "open_image", "to_rgb"]

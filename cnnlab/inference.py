"""Predictions from a trained model: images in (a path, a PIL image, raw bytes, or a
batch), top-k class names and probabilities out, with the preprocessing that was stored
next to the weights, so that serving never guesses how the model was trained.

Example:
    >>> predictor = Predictor(SimpleCNN().eval(), CIFAR10_CLASSES, Preprocessing(32))
    >>> [(name, round(p, 2)) for name, p in predictor.predict(Image.new("RGB", (50, 40)), k=2)][:1]  # doctest: +SKIP
    [('frog', 0.11)]
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from .checkpoints import save_checkpoint
from .checks import check_inputs
from .images import MAX_PIXELS, decode_image, to_rgb
from .models import inference_copy
from .preprocessing import Preprocessing
from .registry import build_model

_OWN = object()  # "the predictor's own limit"


class Predictor:
    """A model in eval mode with its class names and preprocessing.

    Example:
        >>> p = Predictor(SimpleCNN(), CIFAR10_CLASSES, Preprocessing(32))
        >>> len(p.predict(Image.new("RGB", (32, 32)), k=3))
        3
    """

    def __init__(self, model: nn.Module, class_names: list[str],
                 preprocessing: Preprocessing, device: str | torch.device = "cpu",
                 max_pixels: int | None = MAX_PIXELS) -> None:  # fmt: skip
        # a copy in eval mode on `device`: the caller's model stays where and as it was
        self.model = inference_copy(model, device)
        self.max_pixels = max_pixels
        self.class_names = list(class_names)
        self.preprocessing = preprocessing
        self.device = torch.device(device)
        self._transform = preprocessing.transform()

    def prepare(self, source, name: str | None = None, max_pixels: int | None | object = _OWN
                ) -> torch.Tensor:  # fmt: skip
        """One input (path, bytes, PIL image) as a normalised ``(C, H, W)`` tensor, decoded
        by :func:`cnnlab.images.decode_image`, exactly as an image folder decodes it.
        ``name`` is what error messages call it; ``max_pixels`` overrides the predictor's."""
        limit = self.max_pixels if max_pixels is _OWN else max_pixels
        return self._transform(decode_image(source, max_pixels=limit, name=name))

    @torch.no_grad()
    def predict_batch(self, images: torch.Tensor, k: int = 5) -> list[list[tuple[str, float]]]:
        """Top-``k`` ``(class name, probability)`` for each image of a prepared batch
        (float32 and finite: NaN is refused, float64 converted)."""
        images = check_inputs(images, "the batch to predict")
        probs = self.model(images.to(self.device)).softmax(dim=1).cpu()
        values, indices = probs.topk(min(k, probs.shape[1]), dim=1)
        return [[(self.class_names[i], round(float(p), 6)) for p, i in zip(vs, ix, strict=True)]
                for vs, ix in zip(values.tolist(), indices.tolist(), strict=True)]  # fmt: skip

    def predict(self, source, k: int = 5, name: str | None = None) -> list[tuple[str, float]]:
        """Top-``k`` ``(class name, probability)`` for one image (path, bytes or PIL)."""
        return self.predict_batch(self.prepare(source, name).unsqueeze(0), k)[0]

    def save(self, path: str | Path, model_spec: dict) -> Path:
        """Save weights, class names, preprocessing and ``model_spec`` (how to rebuild the
        network, e.g. ``{"name": "SimpleCNN", "kwargs": {"num_classes": 10}}``)."""
        return save_checkpoint(path, self.model, extra={
            "class_names": self.class_names,
            "preprocessing": self.preprocessing.as_dict(),
            "model_spec": model_spec,
        })  # fmt: skip

    @classmethod
    def load(cls, path: str | Path, device: str | torch.device = "cpu",
             max_pixels: int | None = MAX_PIXELS) -> Predictor:  # fmt: skip
        """Rebuild a predictor from :meth:`save`'s file (safely: ``weights_only=True``).

        A training checkpoint, a bare ``state_dict`` or a pickled whole model is refused
        with a message that says what the file is and which file to use instead.
        """
        from .checkpoints import CheckpointError, build_with_weights, describe, safe_load

        state = safe_load(path)
        kind = describe(state)
        if kind == "training":
            raise CheckpointError(
                f"{path} is a training checkpoint (for resuming with --resume), not a model "
                "file: it has no class names or preprocessing. Use the model file that "
                "`cnnlab train` saved at --out (the checkpoint is its '-training.pt' twin)."
            )
        if kind != "model":
            raise CheckpointError(
                f"{path} holds only weights (a {kind.replace('_', ' ')}), without the class names, "
                "preprocessing and architecture a prediction needs. Load them into your model "
                "and save a model file: Predictor(model, class_names, Preprocessing(...))"
                ".save(path, {'name': 'SimpleCNN', 'kwargs': {...}})."
            )
        extra = state["extra"]
        model = build_with_weights(lambda: build_model(extra["model_spec"]), state["model"], path)
        return cls(model, extra["class_names"], Preprocessing.from_dict(extra["preprocessing"]),
                   device, max_pixels)  # fmt: skip


__all__ = ["Predictor", "Preprocessing", "build_model", "decode_image", "to_rgb"]

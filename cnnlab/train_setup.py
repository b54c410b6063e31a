"""What ``cnnlab train`` trains for each architecture in :mod:`cnnlab.registry`: the
network, its preprocessing, the training transform, the optimizer and the callbacks
(:func:`make_recipe`)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .data import CIFAR10_MEAN, CIFAR10_STD, IMAGENET_MEAN, IMAGENET_STD, cifar10_train_transform
from .errors import ConfigurationError
from .preprocessing import Preprocessing
from .registry import CNNLAB_MODELS, build_model, model_names


@dataclass
class Recipe:
    """How ``train_model`` builds the network and prepares the images for it."""

    spec: dict
    preprocessing: Preprocessing
    train_transform: object
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    callbacks: list


def make_recipe(arch: str, num_classes: int, *, photos: bool, size: int | None, lr: float | None,
                epochs: int, strategy: str = "frozen") -> Recipe:  # fmt: skip
    """The network, preprocessing, training transform, optimizer and callbacks for ``arch``.

    cnnlab's own models (``SimpleCNN``, ``SmallResNet``, ``FastNet``) train from scratch,
    at 32 px on CIFAR-10 and ``size`` (default 64) on photos; a torchvision architecture
    (``resnet18``, ``mobilenet_v3_small``, ...) is fine-tuned from ImageNet weights with a
    ``strategy`` of notebook 04 (``frozen``, ``last_block``, ``discriminative``,
    ``gradual``, ``scratch``), at its weights' own size unless ``size`` says otherwise.

    Example:
        >>> recipe = make_recipe("SimpleCNN", 10, photos=False, size=None, lr=None, epochs=1)
        >>> recipe.spec, recipe.preprocessing.size
        ({'name': 'SimpleCNN', 'kwargs': {'num_classes': 10, 'input_size': 32}}, 32)
    """
    from .finetune import STRATEGIES, configure
    from .transfer import ARCHITECTURES, build_transfer_model

    if arch in CNNLAB_MODELS:
        side = size or (64 if photos else 32)
        mean, std = (IMAGENET_MEAN, IMAGENET_STD) if photos else (CIFAR10_MEAN, CIFAR10_STD)
        kwargs = {"num_classes": num_classes} | (
            {"input_size": side} if arch == "SimpleCNN" else {}
        )
        spec = {"name": arch, "kwargs": kwargs}
        model = build_model(spec)
        if photos:
            pre = Preprocessing.for_photos(side, mean, std)
            train_tf = pre.train_transform()
        else:
            pre = Preprocessing(side, mean, std)
            train_tf = cifar10_train_transform(mean, std) if side == 32 else pre.train_transform()
        optimizer = torch.optim.Adam(model.parameters(), lr=lr or 1e-3)
        return Recipe(spec, pre, train_tf, model, optimizer, [])
    if arch not in ARCHITECTURES:
        raise ConfigurationError(f"unknown architecture {arch!r}: choose one of "
                                 f"{', '.join(model_names())}")  # fmt: skip
    if strategy not in STRATEGIES:
        raise ConfigurationError(
            f"unknown strategy {strategy!r}: choose one of {', '.join(STRATEGIES)}"
        )
    tm = build_transfer_model(
        arch, num_classes, weights=None if strategy == "scratch" else "DEFAULT"
    )
    pre = tm.preprocessing
    if size is not None and size != pre.size:
        pre = Preprocessing.for_photos(size, pre.mean, pre.std, pre.interpolation)
    optimizer, callbacks = configure(strategy, tm.model, lr or 1e-3, epochs)
    spec = {"name": arch, "kwargs": {"num_classes": num_classes}}
    return Recipe(spec, pre, pre.train_transform(), tm.model, optimizer, callbacks)


__all__ = ["Recipe", "make_recipe"]

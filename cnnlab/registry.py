"""One registry of the networks cnnlab builds by name: cnnlab's own models (trained from
scratch) and the torchvision architectures it fine-tunes. The ``cnnlab`` command's
``--arch`` choices, :mod:`cnnlab.tasks`, model files (:class:`cnnlab.inference.Predictor`)
and the tests all read this one list, so a model offered anywhere can be built and
loaded everywhere.

Example:
    >>> "FastNet" in model_names() and "resnet18" in model_names()
    True
    >>> build_model({"name": "FastNet", "kwargs": {"num_classes": 3}})(torch.rand(1, 3, 32, 32)).shape
    torch.Size([1, 3])
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from .errors import ConfigurationError


def _cnnlab_models() -> dict[str, Callable[..., nn.Module]]:
    from .models import FastNet, SimpleCNN, SmallResNet

    return {"SimpleCNN": SimpleCNN, "SmallResNet": SmallResNet, "FastNet": FastNet}


# cnnlab's own models, by name (the values are built lazily by _cnnlab_models).
CNNLAB_MODELS: tuple[str, ...] = ("SimpleCNN", "SmallResNet", "FastNet")


def torchvision_architectures() -> tuple[str, ...]:
    """The torchvision architectures cnnlab knows how to give a new head.

    Example:
        >>> torchvision_architectures()[0]
        'resnet18'
    """
    from .transfer import ARCHITECTURES

    return ARCHITECTURES


def model_names() -> tuple[str, ...]:
    """Every name :func:`build_model` accepts: cnnlab's models, then torchvision's.

    Example:
        >>> model_names()[:3]
        ('SimpleCNN', 'SmallResNet', 'FastNet')
    """
    return CNNLAB_MODELS + torchvision_architectures()


def build_model(spec: dict) -> nn.Module:
    """Build a network from a plain description ``{"name": ..., "kwargs": {...}}``: a
    cnnlab model or a torchvision architecture (with random weights; a model file's
    weights are loaded into it afterwards).

    Example:
        >>> build_model({"name": "SmallResNet", "kwargs": {"num_classes": 5, "width": 8}}).head[-1]
        Linear(in_features=64, out_features=5, bias=True)
    """
    name, kwargs = spec["name"], dict(spec.get("kwargs", {}))
    own = _cnnlab_models()
    if name in own:
        return own[name](**kwargs)
    if name not in torchvision_architectures():
        raise ConfigurationError(
            f"unknown model {name!r}: cnnlab builds {', '.join(model_names())}."
        )
    from .transfer import build_transfer_model

    return build_transfer_model(name, weights=None, **kwargs).model


__all__ = ["CNNLAB_MODELS", "build_model", "model_names", "torchvision_architectures"]

"""Transfer learning: pretrained torchvision models with a new head, ImageNet predictions,
and cached features for fast feature extraction.

Weights come through torchvision's ``weights=`` API (never the old ``pretrained=True``).
With ``CNNLAB_OFFLINE=1`` the same builders use random weights and say so in a banner,
so that every notebook runs without a network.

Example:
    >>> tm = build_transfer_model("resnet18", num_classes=10, weights=None)
    >>> type(tm.model.fc).__name__, tm.model.fc.out_features
    ('Linear', 10)
"""

from __future__ import annotations

import copy
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image
from torch import nn
from torch.utils.data import TensorDataset

from . import settings
from .errors import CnnlabError
from .preprocessing import Preprocessing
from .progress import progress as progress_bar

# Where each family keeps its final Linear layer: (attribute path to the Linear).
HEADS: dict[str, str] = {
    "resnet18": "fc",
    "resnet34": "fc",
    "resnet50": "fc",
    "resnet152": "fc",
    "alexnet": "classifier.6",
    "vgg16": "classifier.6",
    "googlenet": "fc",
    "inception_v3": "fc",
    "densenet121": "classifier",
    "mobilenet_v2": "classifier.1",
    "mobilenet_v3_small": "classifier.3",
    "mobilenet_v3_large": "classifier.3",
    "efficientnet_b0": "classifier.1",
}
ARCHITECTURES = tuple(HEADS)
# The seven the source tutorials run for ImageNet predictions ("densenet" there loaded
# VGG-16 by mistake; here it is DenseNet-121).
SOURCE_ARCHITECTURES = ("resnet18", "alexnet", "vgg16", "densenet121", "inception_v3",
                        "googlenet", "mobilenet_v2")  # fmt: skip


class WeightsUnavailableError(CnnlabError, RuntimeError):
    """Pretrained weights could not be downloaded or read."""


@dataclass
class TransferModel:
    """What :func:`build_transfer_model` returns.

    Attributes:
        model: the network, with its new head.
        arch: the torchvision architecture name.
        weights: the torchvision weights enum member (``None`` for random weights).
        pretrained: whether pretrained weights were actually loaded.
        transforms: torchvision's preprocessing that matches the weights.
        preprocessing: the same as a :class:`~cnnlab.preprocessing.Preprocessing` (resize,
            crop, interpolation, mean, std), to save with the model.
    """

    model: nn.Module
    arch: str
    weights: object | None
    pretrained: bool
    transforms: nn.Module | None
    preprocessing: Preprocessing


def make_head(in_features: int, num_classes: int, head: str = "linear", hidden: int = 128,
              dropout: float = 0.5) -> nn.Module:  # fmt: skip
    """A new classifier head: ``"linear"`` (one Linear layer) or ``"mlp"``
    (Linear-ReLU-Dropout-Linear; the defaults are the seed tutorial's: 128 wide, dropout
    0.5, 66,954 parameters on ResNet-18's 512 features for 10 classes).

    Example:
        >>> make_head(512, 5, "mlp")
        Sequential(
          (0): Linear(in_features=512, out_features=128, bias=True)
          (1): ReLU(inplace=True)
          (2): Dropout(p=0.5, inplace=False)
          (3): Linear(in_features=128, out_features=5, bias=True)
        )
    """
    if head == "linear":
        return nn.Linear(in_features, num_classes)
    if head == "mlp":
        return nn.Sequential(
            nn.Linear(in_features, hidden),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(hidden, num_classes),
        )
    raise ValueError(f"head must be 'linear' or 'mlp' (or pass an nn.Module), got {head!r}")


def _resolve(model: nn.Module, path: str) -> tuple[nn.Module, str]:
    *parents, last = path.split(".")
    for name in parents:
        model = getattr(model, name) if not name.isdigit() else model[int(name)]
    return model, last


def _get_child(parent: nn.Module, name: str) -> nn.Module:
    return parent[int(name)] if name.isdigit() else getattr(parent, name)


def _set_child(parent: nn.Module, name: str, module: nn.Module) -> None:
    if name.isdigit():
        parent[int(name)] = module
    else:
        setattr(parent, name, module)


def replace_head(model: nn.Module, arch: str, head: nn.Module) -> nn.Module:
    """Put ``head`` where ``arch`` keeps its final Linear layer; returns the old layer.

    Example:
        >>> import torchvision
        >>> net = torchvision.models.resnet18()
        >>> replace_head(net, "resnet18", nn.Linear(512, 3)).out_features
        1000
    """
    parent, name = _resolve(model, _head_path(arch))
    old = _get_child(parent, name)
    _set_child(parent, name, head)
    return old


def _head_path(arch: str) -> str:
    if arch not in HEADS:
        raise ValueError(f"unknown architecture {arch!r}; known: {', '.join(ARCHITECTURES)}")
    return HEADS[arch]


def _weights_enum(arch: str, weights):
    from torchvision.models import get_model_weights

    if weights is None:
        return None
    enum = get_model_weights(arch)
    if isinstance(weights, str):
        return enum.DEFAULT if weights == "DEFAULT" else enum[weights]
    return weights


def _checkpoint_path(weights) -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(weights.url)


def build_transfer_model(
    arch: str,
    num_classes: int | None,
    weights: str | object | None = "DEFAULT",
    head: str | nn.Module = "linear",
    **head_kwargs,
) -> TransferModel:
    """A torchvision model with (by default) ImageNet weights and a new head.

    Args:
        arch: one of :data:`ARCHITECTURES` (``"resnet18"``, ``"mobilenet_v3_small"``, ...).
        num_classes: outputs of the new head; ``None`` keeps the original ImageNet head
            (1,000 classes), for predictions with :func:`top_k`.
        weights: ``"DEFAULT"`` (the best published weights), a member name such as
            ``"IMAGENET1K_V1"``, a torchvision weights enum member, or ``None`` for random
            weights. With ``CNNLAB_OFFLINE=1`` weights are random and a banner says so.
        head: ``"linear"``, ``"mlp"`` (see :func:`make_head`), or your own module.

    Raises:
        WeightsUnavailableError: the download failed; the message says where to put the file.

    Example:
        >>> tm = build_transfer_model("mobilenet_v3_small", num_classes=5, weights=None)
        >>> tm.model.classifier[3].out_features, tm.pretrained
        (5, False)
    """
    from torchvision.models import get_model

    path = _head_path(arch)
    enum = _weights_enum(arch, weights)
    load = enum is not None and not settings.offline_mode()
    if enum is not None and not load:
        settings.banner(
            f"{settings.OFFLINE_ENV}=1: {arch} gets RANDOM weights instead of {enum}.\n"
            "Accuracies and predictions are not those of a pretrained network.\n"
            "Unset it (and be online) for the real pretrained weights."
        )
    try:
        # random GoogLeNet / Inception: no auxiliary heads, and skip their slow scipy init
        # (with weights, torchvision sets both itself and refuses other values)
        options = {"aux_logits": False, "init_weights": False} \
            if arch in ("googlenet", "inception_v3") and not load else {}  # fmt: skip
        model = get_model(arch, weights=enum if load else None, **options)
    except (OSError, RuntimeError) as error:  # URLError is an OSError
        raise WeightsUnavailableError(
            f"could not download or read the {enum} weights for {arch} ({error}). Ways out:\n"
            f"  1. be online, or copy the file from {enum.url}\n"
            f"     to {_checkpoint_path(enum)} (torch looks there first; $TORCH_HOME moves it);\n"
            f"  2. set {settings.OFFLINE_ENV}=1 to continue with random weights;\n"
            "  3. pass weights=None to train from scratch."
        ) from error
    if num_classes is not None or isinstance(head, nn.Module):
        parent, name = _resolve(model, path)
        in_features = _get_child(parent, name).in_features
        new_head = head if isinstance(head, nn.Module) else make_head(
            in_features, num_classes, head, **head_kwargs
        )  # fmt: skip
        _set_child(parent, name, new_head)
    if arch == "inception_v3" and load:  # one output in training too: no auxiliary head
        model.aux_logits, model.AuxLogits = False, None
    transforms = enum.transforms() if enum is not None else None
    preprocessing = Preprocessing.from_weights(
        enum if enum is not None else _weights_enum(arch, "DEFAULT")
    )
    return TransferModel(model, arch, enum, load, transforms, preprocessing)


def imagenet_categories(weights) -> list[str]:
    """The 1,000 ImageNet class names that come with a weights enum member.

    Example:
        >>> from torchvision.models import ResNet18_Weights
        >>> imagenet_categories(ResNet18_Weights.DEFAULT)[:3]
        ['tench', 'goldfish', 'great white shark']
    """
    return list(weights.meta["categories"])


@torch.no_grad()
def top_k(
    model: nn.Module,
    images: Sequence[Image.Image] | torch.Tensor,
    categories: Sequence[str],
    k: int = 5,
    transform: nn.Module | None = None,
) -> list[list[tuple[str, float]]]:
    """The ``k`` most probable classes for each image, as ``(name, probability)`` pairs.

    ``images`` are PIL images (``transform`` turns each into a tensor, e.g. the weights'
    ``transforms()``) or an already prepared batch ``(N, C, H, W)``.

    Example:
        >>> net = nn.Sequential(nn.Flatten(), nn.Linear(12, 3))
        >>> top_k(net, torch.zeros(1, 3, 2, 2), ["cat", "dog", "car"], k=2)  # doctest: +SKIP
        [[('dog', 0.36), ('cat', 0.33)]]
    """
    if not isinstance(images, torch.Tensor):
        if transform is None:
            raise ValueError("PIL images need a transform, e.g. weights.transforms()")
        images = torch.stack([transform(img.convert("RGB")) for img in images])
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    try:
        probs = model(images.to(device)).softmax(dim=1).cpu()
    finally:
        model.train(was_training)
    values, indices = probs.topk(min(k, probs.shape[1]), dim=1)
    return [
        [(categories[i], float(p)) for p, i in zip(row_p, row_i, strict=True)]
        for row_p, row_i in zip(values.tolist(), indices.tolist(), strict=True)
    ]


def backbone_of(model: nn.Module, arch: str) -> nn.Module:
    """A copy of the model whose final Linear layer is ``nn.Identity``: it maps images to
    feature vectors (for :func:`extract_features`). ``model`` itself is not changed.

    Example:
        >>> import torchvision
        >>> body = backbone_of(torchvision.models.resnet18(), "resnet18")
        >>> body(torch.zeros(1, 3, 64, 64)).shape
        torch.Size([1, 512])
    """
    body = copy.deepcopy(model)
    replace_head(body, arch, nn.Identity())
    return body


@torch.no_grad()
def extract_features(
    backbone: nn.Module,
    loader: Iterable,
    device: torch.device | str | None = None,
    progress: bool = True,
) -> TensorDataset:
    """Run a frozen backbone over ``loader`` once and keep ``(features, labels)`` in memory.

    Training a head on these cached features costs one matrix multiply per image instead
    of a pass through the whole network, every epoch. (No data augmentation: each image
    is seen as it was when cached.)

    Example:
        >>> body = nn.Sequential(nn.Flatten(), nn.Linear(12, 4))
        >>> loader = [(torch.zeros(8, 3, 2, 2), torch.zeros(8, dtype=torch.long))]
        >>> feats = extract_features(body, loader, "cpu", progress=False)
        >>> feats.tensors[0].shape, feats.tensors[1].shape
        (torch.Size([8, 4]), torch.Size([8]))
    """
    device = torch.device(device) if device is not None else settings.get_device()
    backbone.eval().to(device)
    features, labels = [], []
    for x, y in progress_bar(loader, desc="features", leave=False, disable=not progress):
        features.append(backbone(x.to(device)).flatten(1).float().cpu())
        labels.append(torch.as_tensor(y))
    if not features:
        raise ValueError("the loader yielded no batches: is the data set empty?")
    return TensorDataset(torch.cat(features), torch.cat(labels))

"""Models for 32x32 images: the course's SimpleCNN, a small ResNet, a fast network for
short training runs; :func:`unwrap` and :func:`inference_copy`. The summary table and the
parameter and MAC counts live in :mod:`cnnlab.summary` (also importable from here)."""

from __future__ import annotations

import copy

import torch
from torch import nn

from .checks import check_images
from .summary import (  # noqa: F401  (re-exported: notebooks import them from here)
    LayerRow,
    ModelSummary,
    ParamCount,
    count_macs,
    count_parameters,
    summary,
)


class SimpleCNN(nn.Module):
    """The course's first network: three conv-ReLU-pool stages and two linear layers.

    Each stage halves the image, so a ``input_size`` x ``input_size`` image reaches the
    classifier as 128 maps of ``input_size // 8`` pixels a side. The original tutorial
    hard-coded that as ``x.view(-1, 128 * 4 * 4)``, which breaks as soon as the input
    is not 32 px; here the size is an argument and a wrong input gets a clear error.

    Args:
        num_classes: number of outputs (10 for CIFAR-10).
        in_channels: 3 for RGB, 1 for grayscale.
        input_size: the side of the square input images, a multiple of 8.
        dropout: dropout probability before the last layer.

    Example:
        >>> model = SimpleCNN(num_classes=10)
        >>> model(torch.zeros(4, 3, 32, 32)).shape
        torch.Size([4, 10])
    """

    def __init__(
        self,
        num_classes: int = 10,
        in_channels: int = 3,
        input_size: int = 32,
        dropout: float = 0.25,
    ) -> None:
        super().__init__()
        if input_size % 8 or input_size < 8:
            raise ValueError(f"input_size must be a positive multiple of 8, got {input_size}")
        self.in_channels, self.input_size, self.num_classes = in_channels, input_size, num_classes
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 32, kernel_size=3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(32, 64, kernel_size=3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(64, 128, kernel_size=3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )
        side = input_size // 8
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(128 * side * side, 512),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(512, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_images(x, self.in_channels, self.input_size, model_name="SimpleCNN")
        return self.classifier(self.features(x))


def conv_bn(in_channels: int, out_channels: int, stride: int = 1) -> nn.Sequential:
    """A 3x3 convolution, batch normalisation and ReLU: the brick of a ResNet.

    Example:
        >>> conv_bn(3, 16)(torch.zeros(1, 3, 8, 8)).shape
        torch.Size([1, 16, 8, 8])
    """
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


class ResidualBlock(nn.Module):
    """Two conv-BN layers whose output is *added* to the input: ``y = relu(x + F(x))``.

    The addition is the skip connection: the gradient of ``x + F(x)`` is ``1 + F'(x)``, so
    it reaches earlier layers along the identity path undiminished (where the final ReLU
    passes it: not where the sum is negative), and deep stacks keep learning where a
    plain stack's gradients fade.

    Example:
        >>> block = ResidualBlock(16)
        >>> block(torch.zeros(2, 16, 8, 8)).shape
        torch.Size([2, 16, 8, 8])
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + x)


class SmallResNet(nn.Module):
    """A ResNet-9-style network for 32x32 images (after the DAWNBench CIFAR-10 entries).

    Stem conv, then three stages that double the channels and halve the image; stages
    1 and 3 add a residual block. ``width`` scales every stage: 64 gives the classic
    ResNet-9 (6.6 M parameters), 16 a model that trains in minutes on a laptop CPU.

    Example:
        >>> model = SmallResNet(num_classes=10, width=16)
        >>> model(torch.zeros(2, 3, 32, 32)).shape
        torch.Size([2, 10])
    """

    def __init__(self, num_classes: int = 10, width: int = 32, in_channels: int = 3) -> None:
        super().__init__()
        w = width
        self.in_channels = in_channels
        self.stem = conv_bn(in_channels, w)
        self.layer1 = nn.Sequential(conv_bn(w, 2 * w), nn.MaxPool2d(2), ResidualBlock(2 * w))
        self.layer2 = nn.Sequential(conv_bn(2 * w, 4 * w), nn.MaxPool2d(2))
        self.layer3 = nn.Sequential(conv_bn(4 * w, 8 * w), nn.MaxPool2d(2), ResidualBlock(8 * w))
        self.head = nn.Sequential(
            nn.AdaptiveMaxPool2d(1), nn.Flatten(), nn.Linear(8 * w, num_classes)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_images(x, self.in_channels, None, model_name="SmallResNet")
        return self.head(self.layer3(self.layer2(self.layer1(self.stem(x)))))


def _dirac_conv(in_channels: int, out_channels: int) -> nn.Conv2d:
    """A 3x3 convolution whose first ``in_channels`` filters start as the identity (the
    rest random): at initialisation the block passes its input through, a head start
    that short runs feel."""
    conv = nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False)
    with torch.no_grad():
        nn.init.dirac_(conv.weight[: min(in_channels, out_channels)])
    return conv


def _batchnorm(channels: int, momentum: float, train_scale: bool) -> nn.BatchNorm2d:
    norm = nn.BatchNorm2d(channels, momentum=momentum, eps=1e-12)
    norm.weight.requires_grad_(train_scale)  # frozen at 1: only the shift (bias) learns
    return norm


class FastBlock(nn.Module):
    """Convolution, max-pool, BN, GELU, convolution, BN, GELU: one stage of :class:`FastNet`.

    Pooling right after the first convolution makes the second one (and the BN and
    activations) run on a quarter of the pixels. The convolutions start as the identity
    where they can (``nn.init.dirac_``); the BatchNorm scales are frozen at 1 unless
    ``train_scale`` (a scale in front of a GELU adds little but steps to tune).

    Example:
        >>> FastBlock(8, 16)(torch.zeros(2, 8, 16, 16)).shape
        torch.Size([2, 16, 8, 8])
    """

    def __init__(self, in_channels: int, out_channels: int, bn_momentum: float = 0.4,
                 train_scale: bool = False) -> None:  # fmt: skip
        super().__init__()
        self.conv1 = _dirac_conv(in_channels, out_channels)
        self.pool = nn.MaxPool2d(2)
        self.bn1 = _batchnorm(out_channels, bn_momentum, train_scale)
        self.conv2 = _dirac_conv(out_channels, out_channels)
        self.bn2 = _batchnorm(out_channels, bn_momentum, train_scale)
        self.act = nn.GELU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act(self.bn1(self.pool(self.conv1(x))))
        return self.act(self.bn2(self.conv2(x)))


class FastNet(nn.Module):
    """A small network chosen for training speed on CIFAR-10 (after Keller Jordan's
    airbench): a 2x2 convolution stem (24 filters: the *whitening* layer, see
    :func:`whiten_`), three :class:`FastBlock` stages, global max-pool, and a linear layer
    without bias whose output is scaled by ``1/9`` (smaller logits at the start, as a
    lower initial learning rate of the last layer would give). Its size in multiply-adds
    per image is what :func:`count_macs` measures.

    Example:
        >>> model = FastNet()
        >>> model(torch.zeros(2, 3, 32, 32)).shape
        torch.Size([2, 10])
    """

    def __init__(self, num_classes: int = 10, widths: tuple[int, int, int] = (32, 64, 128),
                 stem_channels: int = 24, in_channels: int = 3, bn_momentum: float = 0.4,
                 train_bn_scale: bool = False, logit_scale: float = 1 / 9) -> None:  # fmt: skip
        super().__init__()
        self.in_channels, self.logit_scale = in_channels, logit_scale
        self.stem = nn.Sequential(nn.Conv2d(in_channels, stem_channels, 2), nn.GELU())
        options = {"bn_momentum": bn_momentum, "train_scale": train_bn_scale}
        self.blocks = nn.Sequential(
            FastBlock(stem_channels, widths[0], **options),
            FastBlock(widths[0], widths[1], **options),
            FastBlock(widths[1], widths[2], **options),
        )
        self.head = nn.Sequential(
            nn.AdaptiveMaxPool2d(1), nn.Flatten(), nn.Linear(widths[2], num_classes, bias=False)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_images(x, self.in_channels, None, model_name="FastNet")
        return self.head(self.blocks(self.stem(x))) * self.logit_scale


@torch.no_grad()
def whiten_(conv: nn.Conv2d, images: torch.Tensor, eps: float = 5e-4) -> nn.Conv2d:
    """Initialise ``conv`` (a stem of ``2 * C * k * k`` filters of size ``k``) as a
    *whitening* layer: the covariance of all ``k x k`` patches of ``images`` is decomposed
    into eigenvectors, and the filters become those eigenvectors scaled by
    ``1 / sqrt(eigenvalue + eps)``, with their negatives. Its outputs are then decorrelated
    from the first step, and of unit variance except along directions fainter than
    ``eps`` (which it does not amplify): the next layers learn faster. Freeze the
    weights afterwards (``conv.weight.requires_grad_(False)``); the bias may train.

    Example:
        >>> stem = nn.Conv2d(3, 24, 2)
        >>> _ = whiten_(stem, torch.randn(64, 3, 8, 8))
        >>> out = stem(torch.randn(64, 3, 8, 8)) - stem.bias.view(1, -1, 1, 1)
        >>> round(float(out[:, :12].flatten(2).std(dim=(0, 2)).mean()), 1)
        1.0
    """
    c, k = conv.in_channels, conv.kernel_size[0]
    if conv.out_channels != 2 * c * k * k:
        raise ValueError(f"a whitening stem needs 2 * {c} * {k} * {k} = {2 * c * k * k} filters, "
                         f"this one has {conv.out_channels}")  # fmt: skip
    patches = images.float().unfold(2, k, 1).unfold(3, k, 1)  # N, C, H', W', k, k
    patches = patches.permute(0, 2, 3, 1, 4, 5).reshape(-1, c * k * k)
    covariance = patches.T @ patches / len(patches)
    eigenvalues, eigenvectors = torch.linalg.eigh(covariance)
    filters = (eigenvectors.T / torch.sqrt(eigenvalues + eps)[:, None]).reshape(-1, c, k, k)
    conv.weight.copy_(torch.cat([filters, -filters]).to(conv.weight))
    if conv.bias is not None:
        conv.bias.zero_()
    return conv


def unwrap(model: nn.Module) -> nn.Module:
    """The model inside ``DistributedDataParallel`` and ``torch.compile`` wrappers (both,
    in any order), so that its ``state_dict`` has the plain keys.

    Example:
        >>> net = SimpleCNN()
        >>> unwrap(torch.compile(net)) is net
        True
    """
    while True:
        if isinstance(model, (nn.parallel.DistributedDataParallel, nn.DataParallel)):
            model = model.module
        elif isinstance(getattr(model, "_orig_mod", None), nn.Module):  # torch.compile(model)
            model = model._orig_mod
        else:
            return model


def inference_copy(model: nn.Module, device: torch.device | str = "cpu") -> nn.Module:
    """A copy of ``model`` for inference: on ``device``, float32, default (NCHW) memory
    order, in eval mode, without gradients. The model you pass is left exactly where and
    as it was (device, dtype, mode, memory order), so you can keep training it.

    Export, quantization, :class:`cnnlab.inference.Predictor` and the web API all work on
    such a copy, so "train on the GPU, then export" needs no ``.cpu()`` of your own.
    A ``DistributedDataParallel`` or ``torch.compile`` wrapper is taken off.

    Example:
        >>> net = SimpleCNN().to(memory_format=torch.channels_last).train()
        >>> copy = inference_copy(net)
        >>> net.training, copy.training, next(copy.parameters()).requires_grad
        (True, False, False)
    """
    clone = copy.deepcopy(unwrap(model))
    if getattr(clone, "_compiled_call_impl", None) is not None:  # model.compile() in place
        clone._compiled_call_impl = None
    clone.to(device=device, dtype=torch.float32)
    clone.to(memory_format=torch.contiguous_format)
    return clone.eval().requires_grad_(False)

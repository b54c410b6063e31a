"""Recipes: a complete, measured training setup behind one call.

:func:`cifar10_fast` trains :class:`cnnlab.models.FastNet` on CIFAR-10 with everything
notebook 07 teaches: the tensor-resident loader, a large batch with a warm-up and
linear-decay schedule, SGD with Nesterov momentum, label smoothing, progressive resizing
(the first epochs on 24-px images), channels_last memory order and flip test-time
augmentation (and mixed precision on a GPU, through
:func:`cnnlab.settings.autocast_dtype`). It evaluates on the test set
after every epoch to report the wall time to each accuracy target, as speed-run
benchmarks do; nothing is tuned on those numbers during the run.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field, replace

import torch
from torch.utils.data import Dataset

from .callbacks import ProgressiveResizing
from .data import DecodedImages, TensorLoader, decode_images, load_cifar10
from .engine import History, evaluate, fit
from .models import FastNet
from .schedules import warmup_linear_decay
from .settings import get_device, seed_everything


@dataclass(frozen=True)
class FastRecipe:
    """The hyper-parameters of :func:`cifar10_fast` (``replace`` or keyword overrides)."""

    epochs: int = 5
    batch_size: int = 512
    lr: float = 0.2
    momentum: float = 0.9
    weight_decay: float = 5e-4
    label_smoothing: float = 0.2
    warmup_fraction: float = 0.15
    widths: tuple[int, int, int] = (32, 64, 128)
    low_res_epochs: int = 3  # progressive resizing: first epochs at low_res px (never the last)
    low_res: int = 24
    tta_flip: bool = True  # for the final evaluation
    channels_last: bool = True  # NHWC: 1.2x measured on a 2-core AVX2 CPU too
    precision: str = "auto"  # bf16 or fp16 autocast on CUDA, float32 elsewhere
    compile: bool = False
    seed: int = 0


@dataclass
class FastResult:
    """What :func:`cifar10_fast` measured.

    ``time_to[0.8]`` is the wall time (training plus evaluations) when the test accuracy
    first reached 80 %, or None. The per-epoch evaluations are plain; the final one adds
    flip test-time augmentation (``test_accuracy``), counted at the end of the run.
    """

    model: torch.nn.Module
    history: History
    recipe: FastRecipe
    device: str
    test_accuracy: float
    seconds: float
    decode_seconds: float
    time_to: dict[float, float | None] = field(default_factory=dict)

    def __str__(self) -> str:
        reached = ", ".join(
            f"{t:.0%} after {s:.0f} s" if s is not None else f"{t:.0%} not reached"
            for t, s in self.time_to.items()
        )
        return (
            f"FastNet{self.recipe.widths}, {len(self.history)} epochs on {self.device}: "
            f"test accuracy {self.test_accuracy:.2%} in {self.seconds:.0f} s "
            f"(+{self.decode_seconds:.0f} s decoding); {reached}"
        )


def _first_time(elapsed: list[float], accuracies: list, target: float) -> float | None:
    """The elapsed time at the first epoch whose accuracy reached ``target``."""
    for seconds, accuracy in zip(elapsed, accuracies, strict=True):
        if accuracy is not None and accuracy >= target:
            return seconds
    return None


def _decoded(data: Dataset | DecodedImages | None, train: bool) -> DecodedImages:
    if isinstance(data, DecodedImages):
        return data
    return decode_images(data if data is not None else load_cifar10(train=train))


def cifar10_fast(
    train: Dataset | DecodedImages | None = None,
    test: Dataset | DecodedImages | None = None,
    recipe: FastRecipe | None = None,
    *,
    device: torch.device | str | None = None,
    targets: tuple[float, ...] = (0.80, 0.85, 0.90, 0.94),
    progress: bool = True,
    **overrides,
) -> FastResult:
    """Train FastNet on CIFAR-10 the fast way and report accuracy and time to targets.

    Args:
        train, test: data sets (or :class:`~cnnlab.data.DecodedImages`); by default
            :func:`~cnnlab.data.load_cifar10` (which honours ``CNNLAB_OFFLINE``).
        recipe: hyper-parameters; ``overrides`` replace single fields, e.g. ``epochs=8``.
        device: defaults to :func:`~cnnlab.settings.get_device`.

    Example:
        >>> result = cifar10_fast(epochs=5)  # doctest: +SKIP
        >>> print(result)  # doctest: +SKIP
        FastNet(32, 64, 128), 5 epochs on cpu: test accuracy 8x.xx% in ... s ...
    """
    recipe = replace(recipe or FastRecipe(), **overrides)
    device = torch.device(device) if device is not None else get_device()
    channels_last = recipe.channels_last
    start = time.perf_counter()
    train_data, test_data = _decoded(train, True), _decoded(test, False)
    decode_seconds = time.perf_counter() - start

    seed_everything(recipe.seed)
    options = {"device": device, "channels_last": channels_last}
    train_loader = TensorLoader(train_data, recipe.batch_size, shuffle=True, augment=True,
                                seed=recipe.seed, drop_last=True, **options)  # fmt: skip
    test_loader = TensorLoader(test_data, batch_size=1000, **options)
    num_classes = len(train_data.classes) or int(train_data.labels.max()) + 1
    model = FastNet(num_classes=num_classes, widths=recipe.widths)
    optimizer = torch.optim.SGD(model.parameters(), lr=recipe.lr, momentum=recipe.momentum,
                                nesterov=True, weight_decay=recipe.weight_decay)  # fmt: skip
    steps = recipe.epochs * len(train_loader)
    scheduler = warmup_linear_decay(optimizer, steps, recipe.warmup_fraction)

    low_res_epochs = min(recipe.low_res_epochs, recipe.epochs - 1)  # the last: full size
    resizing = ProgressiveResizing(train_loader, recipe.low_res, low_res_epochs)

    history = fit(
        model, train_loader, test_loader, epochs=recipe.epochs, optimizer=optimizer,
        scheduler=scheduler, scheduler_interval="step", device=device,
        precision=recipe.precision, label_smoothing=recipe.label_smoothing,
        channels_last=channels_last, compile=recipe.compile,
        callbacks=[resizing], progress=progress,
    )  # fmt: skip
    elapsed = list(itertools.accumulate(history.seconds))
    accuracies = list(history.val_acc)
    if recipe.tta_flip:
        start = time.perf_counter()
        final = evaluate(model, test_loader, device=device, tta_flip=True,
                         precision=recipe.precision, channels_last=channels_last).accuracy  # fmt: skip
        elapsed.append(elapsed[-1] + time.perf_counter() - start)
        accuracies.append(final)
    time_to = {target: _first_time(elapsed, accuracies, target) for target in targets}
    return FastResult(model, history, recipe, str(device), accuracies[-1] or 0.0,
                      elapsed[-1], decode_seconds, time_to)  # fmt: skip

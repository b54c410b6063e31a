"""Recipes: a complete, measured training setup behind one call.

:func:`cifar10_fast` trains :class:`cnnlab.models.FastNet` on CIFAR-10 with everything
notebook 07 teaches, most of it after Keller Jordan's *airbench*: the tensor-resident
loader with translate-and-flip augmentation (flips alternating by epoch), a whitening
first layer initialised from the data, identity-initialised convolutions, frozen
BatchNorm scales, SGD with Nesterov momentum and a larger learning rate for the
BatchNorm shifts, a warm-up then decay schedule, label smoothing, Lookahead weight
averaging, channels_last memory order, and test-time augmentation (mirror and shift) at
the end; mixed precision where the hardware has it (:func:`cnnlab.settings.autocast_dtype`:
a GPU, or a CPU with bfloat16 instructions), and on a CPU, freed memory kept for reuse
(:func:`cnnlab.settings.keep_freed_memory`).
Each technique can be switched off in :class:`FastRecipe`, which is how
``benchmarks/bench_training_fast.py --only ablation`` measures what each one brings.

:data:`TIERS` names the measured recipes, smallest first: ``"fast"`` (the defaults, to
85 % on the JPEG copy of CIFAR-10 the benchmarks use), ``"accurate"`` (a wider network,
more epochs, the first at 24 px, to 90 %) and ``"thorough"`` (wider again at both ends,
12 epochs: the most accurate, and the slowest); ``cifar10_fast(recipe="accurate")`` picks
one.
Their times to each accuracy, next to airbench94's in the same run, are the README's
``vs_airbench`` figure (``benchmarks/bench_vs_airbench.py``).

The clock covers training and the final evaluation; the per-epoch accuracies on the
evaluation data are logged with their evaluation time left out (as speed-run benchmarks
do), and nothing in the run is chosen from them.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch
from torch.utils.data import Dataset

from .callbacks import (
    Callback,
    FitState,
    LambdaCallback,
    Lookahead,
    ModelCheckpoint,
    ProgressiveResizing,
)
from .data import DecodedImages, TensorLoader, decode_images, load_cifar10
from .engine import History, evaluate, fit
from .errors import ConfigurationError
from .models import FastNet, whiten_
from .schedules import warmup_linear_decay
from .settings import get_device, keep_freed_memory, plural, seed_everything


@dataclass(frozen=True)
class FastRecipe:
    """The hyper-parameters of :func:`cifar10_fast` (``replace`` or keyword overrides).

    ``lr`` and ``weight_decay`` are given *per 1,024 images and decoupled from the
    momentum* (airbench's convention, after David Page's): changing the batch size or the
    momentum keeps the size of the average step, so each can be tuned alone.
    """

    epochs: int = 8
    batch_size: int = 512
    lr: float = 11.5
    momentum: float = 0.85
    weight_decay: float = 0.0153
    bias_scaler: float = 64.0  # BatchNorm shifts learn this much faster (not decayed more)
    label_smoothing: float = 0.2
    warmup_fraction: float = 0.23
    start_factor: float = 0.2  # the schedule's first and last multiples of lr
    end_factor: float = 0.07
    widths: tuple[int, int, int] = (32, 64, 128)
    whiten: bool = True  # the stem as a whitening layer, from 5,000 training images
    whiten_bias_epochs: int = 3  # its bias trains for these epochs, then freezes
    frozen_bn_scale: bool = True
    lookahead: bool = True
    translate: int = 2  # random shifts of up to this many pixels (reflect padding)
    flip: str = "alternate"  # "alternate", "random" or "none"
    tta_flip: bool = True  # for the final evaluation
    tta_translate: int = 1
    low_res_epochs: int = 0  # progressive resizing: first epochs at low_res px (never the last)
    low_res: int = 24
    channels_last: bool = True  # NHWC: faster on GPUs and on many CPUs
    precision: str = "auto"  # bf16/fp16 on CUDA, bf16 on CPUs that have it, else float32
    keep_freed_memory: bool = True  # on a CPU: settings.keep_freed_memory() (process-wide)
    compile: bool = False
    seed: int = 0

    @property
    def epochs_at_low_res(self) -> int:
        """How many of the first epochs train at ``low_res`` px: ``low_res_epochs``, but
        never the last epoch, which is at full size.

        Example:
            >>> FastRecipe(epochs=3, low_res_epochs=4).epochs_at_low_res
            2
        """
        return min(self.low_res_epochs, self.epochs - 1)

    def sgd_settings(self) -> tuple[float, float, float, float]:
        """``(lr, weight_decay, bias_lr, bias_weight_decay)`` for ``torch.optim.SGD`` with a
        mean loss over batches of ``batch_size``, from the decoupled values.

        Example:
            >>> [round(v, 4) for v in FastRecipe(batch_size=1024).sgd_settings()]
            [1.5, 0.0013, 96.0, 0.0]
        """
        per_image_step = 1 / (1024 * (1 + 1 / (1 - self.momentum)))
        lr = self.lr * self.batch_size * per_image_step
        decay = self.weight_decay * self.batch_size * per_image_step  # shrink per step
        bias_lr = lr * self.bias_scaler
        return lr, decay / lr, bias_lr, decay / bias_lr


#: The measured tiers by name, smallest first, each chosen on the 45,000 / 5,000 validation
#: split (``benchmarks/bench_training_fast.py --only tuning``, ``--only tiers``).
TIERS: dict[str, FastRecipe] = {
    "fast": FastRecipe(),
    "accurate": FastRecipe(epochs=10, widths=(64, 256, 256), low_res_epochs=4),
    "thorough": FastRecipe(epochs=12, widths=(96, 256, 384), low_res_epochs=5),
}


def recipe_tier(name: str) -> FastRecipe:
    """The :class:`FastRecipe` of a tier in :data:`TIERS`, or an error that lists them.

    Example:
        >>> recipe_tier("accurate").widths
        (64, 256, 256)
    """
    if name not in TIERS:
        raise ConfigurationError(f"no recipe tier {name!r}: the tiers are "
                                 f"{', '.join(map(repr, TIERS))} (cnnlab.recipes.TIERS)")  # fmt: skip
    return TIERS[name]


@dataclass
class FastResult:
    """What :func:`cifar10_fast` measured.

    ``time_to[0.85]`` is the training time (plus the final evaluation, when that is the
    first to reach it) at which the evaluation data's accuracy first reached 85 %, or
    None. ``accuracy`` holds the per-epoch accuracies (plain); ``test_accuracy`` the final
    one, with test-time augmentation.
    """

    model: torch.nn.Module
    history: History
    recipe: FastRecipe
    device: str
    test_accuracy: float
    seconds: float
    decode_seconds: float
    accuracy: list[float] = field(default_factory=list)
    time_to: dict[float, float | None] = field(default_factory=dict)

    @property
    def curve(self) -> list[tuple[float, float]]:
        """``(seconds, accuracy)`` after each epoch, then at the end with test-time
        augmentation: the points of a trade-off curve
        (:func:`cnnlab.plots.plot_time_to_accuracy`), and what ``time_to`` is read from."""
        elapsed = itertools.accumulate(self.history.seconds)
        return [*zip(elapsed, self.accuracy, strict=True), (self.seconds, self.test_accuracy)]

    def __str__(self) -> str:
        reached = ", ".join(
            f"{t:.0%} after {s:.0f} s" if s is not None else f"{t:.0%} not reached"
            for t, s in self.time_to.items()
        )
        return (
            f"FastNet{self.recipe.widths}, {plural(len(self.history), 'epoch')} on {self.device}: "
            f"test accuracy {self.test_accuracy:.2%} in {self.seconds:.0f} s "
            f"(+{self.decode_seconds:.0f} s decoding); {reached}"
        )


class EpochAccuracy(Callback):
    """Evaluate after every epoch and record the accuracy, its time kept off the clock
    (``History.seconds`` is measured before callbacks run)."""

    def __init__(self, loader, channels_last: bool, precision: str) -> None:
        self.loader, self.channels_last, self.precision = loader, channels_last, precision
        self.accuracy: list[float] = []

    def on_epoch_end(self, state: FitState) -> None:
        result = evaluate(state.model, self.loader, device=state.device, precision=self.precision,
                          channels_last=self.channels_last)  # fmt: skip
        self.accuracy.append(result.accuracy)

    def state_dict(self) -> dict:
        return {"accuracy": list(self.accuracy)}

    def load_state_dict(self, state: dict) -> None:
        self.accuracy = list(state["accuracy"])


def _decoded(data: Dataset | DecodedImages | None, train: bool) -> DecodedImages:
    if isinstance(data, DecodedImages):
        return data
    return decode_images(data if data is not None else load_cifar10(train=train))


def whitening_sample(labels: torch.Tensor, count: int = 5000, seed: int = 0) -> torch.Tensor:
    """Indices of ``count`` training images drawn at random (with ``seed``) for the whitening
    layer. Not the first ``count``: a folder-of-classes copy of CIFAR-10 lists its images
    class by class, and its first 5,000 are all airplanes.

    Example:
        >>> sorted_labels = torch.arange(10).repeat_interleave(100)  # 100 of each, in order
        >>> sorted_labels[whitening_sample(sorted_labels, 50)].unique().numel()
        10
    """
    generator = torch.Generator().manual_seed(seed)
    return torch.randperm(len(labels), generator=generator)[:count]


def make_fast_model(recipe: FastRecipe, train_loader: TensorLoader, num_classes: int) -> FastNet:
    """FastNet for ``recipe``; with ``recipe.whiten`` its stem is a whitening layer
    computed from 5,000 normalised training images drawn at random with the recipe's seed
    (:func:`whitening_sample`), its weights frozen.

    Example:
        >>> loader = TensorLoader(decode_images(StandInCIFAR10(size=64)), batch_size=32)
        >>> make_fast_model(FastRecipe(), loader, 10).stem[0].weight.requires_grad
        False
    """
    model = FastNet(num_classes=num_classes, widths=recipe.widths,
                    train_bn_scale=not recipe.frozen_bn_scale).to(train_loader.device)  # fmt: skip
    if recipe.whiten:
        chosen = whitening_sample(train_loader.labels, 5000, recipe.seed)
        sample = train_loader.images[chosen.to(train_loader.images.device)].float().div(255)
        whiten_(model.stem[0], (sample - train_loader.mean) / train_loader.std)
        model.stem[0].weight.requires_grad_(False)
    return model


def _optimizer(model: FastNet, recipe: FastRecipe, device: torch.device) -> torch.optim.SGD:
    lr, decay, bias_lr, bias_decay = recipe.sgd_settings()
    shifts = [p for n, p in model.named_parameters() if ".bn" in n and n.endswith("bias")]
    chosen = {id(p) for p in shifts}
    others = [p for p in model.parameters() if id(p) not in chosen]
    return torch.optim.SGD(
        [{"params": others, "lr": lr, "weight_decay": decay},
         {"params": shifts, "lr": bias_lr, "weight_decay": bias_decay}],
        lr=lr, momentum=recipe.momentum, nesterov=True,
        fused=True if device.type == "cuda" else None,  # no per-step read with float16
    )  # fmt: skip


def cifar10_fast(
    train: Dataset | DecodedImages | None = None,
    test: Dataset | DecodedImages | None = None,
    recipe: FastRecipe | str | None = None,
    *,
    device: torch.device | str | None = None,
    targets: tuple[float, ...] = (0.80, 0.85, 0.90, 0.94),
    checkpoint: str | Path | None = None,
    callbacks: Sequence[Callback] = (),
    progress: bool = True,
    **overrides,
) -> FastResult:
    """Train FastNet on CIFAR-10 the fast way and report accuracy and time to targets.

    Args:
        train, test: data sets (or :class:`~cnnlab.data.DecodedImages`); by default
            :func:`~cnnlab.data.load_cifar10` (which honours ``CNNLAB_OFFLINE``). Pass a
            validation split as ``test`` while choosing hyper-parameters.
        recipe: hyper-parameters, or the name of a tier in :data:`TIERS` (default
            ``"fast"``); ``overrides`` replace single fields, e.g. ``epochs=8``.
        device: defaults to :func:`~cnnlab.settings.get_device`.
        checkpoint: a file to save the run to after every epoch; run the same call again
            after an interruption and it resumes from there, ending as the uninterrupted
            run would (:class:`~cnnlab.callbacks.ModelCheckpoint` with ``resume=True``).
        callbacks: more callbacks for :func:`~cnnlab.engine.fit`.

    Example:
        >>> result = cifar10_fast(recipe="accurate", checkpoint="runs/accurate.pt")  # doctest: +SKIP
        >>> print(result)  # doctest: +SKIP
        FastNet(64, 256, 256), 10 epochs on cpu: test accuracy 9x.xx% in ... s ...
    """
    if isinstance(recipe, str):
        recipe = recipe_tier(recipe)
    recipe = replace(recipe or TIERS["fast"], **overrides)
    device = torch.device(device) if device is not None else get_device()
    if device.type == "cpu" and recipe.keep_freed_memory:
        keep_freed_memory()
    start = time.perf_counter()
    train_data, test_data = _decoded(train, True), _decoded(test, False)
    decode_seconds = time.perf_counter() - start

    seed_everything(recipe.seed)
    options = {"device": device, "channels_last": recipe.channels_last}
    train_loader = TensorLoader(train_data, recipe.batch_size, shuffle=True, augment=True,
                                padding=recipe.translate, flip=recipe.flip, seed=recipe.seed,
                                drop_last=True, **options)  # fmt: skip
    if len(train_loader) == 0:  # every batch is full (drop_last): none at all here
        raise ConfigurationError(
            f"{len(train_data.labels)} training images make no full batch of "
            f"{recipe.batch_size}: pass a smaller batch_size= (or more images)")  # fmt: skip
    test_loader = TensorLoader(test_data, batch_size=1000, **options)
    num_classes = len(train_data.classes) or int(train_data.labels.max()) + 1
    model = make_fast_model(recipe, train_loader, num_classes)
    optimizer = _optimizer(model, recipe, device)
    scheduler = warmup_linear_decay(optimizer, recipe.epochs * len(train_loader),
                                    recipe.warmup_fraction, recipe.start_factor,
                                    recipe.end_factor)  # fmt: skip
    accuracy = EpochAccuracy(test_loader, recipe.channels_last, recipe.precision)
    callbacks = [accuracy, *callbacks]
    if recipe.epochs_at_low_res:
        callbacks.append(
            ProgressiveResizing(train_loader, recipe.low_res, recipe.epochs_at_low_res)
        )
    if recipe.whiten:
        bias = model.stem[0].bias
        callbacks.append(LambdaCallback(on_epoch_start=lambda state: bias.requires_grad_(
            state.epoch <= recipe.whiten_bias_epochs)))  # fmt: skip
    if recipe.lookahead:
        callbacks.insert(0, Lookahead())  # before the accuracy is measured
    if checkpoint is not None:
        callbacks.append(ModelCheckpoint(checkpoint, resume=True))
    history = fit(
        model, train_loader, epochs=recipe.epochs, optimizer=optimizer, scheduler=scheduler,
        scheduler_interval="step", device=device, precision=recipe.precision,
        label_smoothing=recipe.label_smoothing, channels_last=recipe.channels_last,
        compile=recipe.compile, callbacks=callbacks, progress=progress,
    )  # fmt: skip
    clock = time.perf_counter()
    final = evaluate(model, test_loader, device=device, tta_flip=recipe.tta_flip,
                     tta_translate=recipe.tta_translate, precision=recipe.precision,
                     channels_last=recipe.channels_last).accuracy  # fmt: skip
    seconds = sum(history.seconds) + time.perf_counter() - clock
    result = FastResult(model, history, recipe, str(device), final, seconds, decode_seconds,
                        accuracy.accuracy)  # fmt: skip
    result.time_to = {t: next((s for s, a in result.curve if a >= t), None) for t in targets}
    return result

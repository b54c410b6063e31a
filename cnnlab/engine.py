"""The training engine: one epoch of training, evaluation, and ``fit`` that loops over epochs.

Everything a step needs is an argument (model, data, loss, optimizer, device), as in
torchvision's reference scripts, and one loop serves CPU and GPU, with and without
mixed precision.
"""

from __future__ import annotations

import copy
import time
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import nn
from tqdm.auto import tqdm

from .checkpoints import load_checkpoint, save_checkpoint
from .checks import check_labels
from .freezing import keep_frozen_batchnorm_in_eval
from .progress import progress as progress_bar
from .settings import get_device


@dataclass
class EpochResult:
    """Mean loss and accuracy over one pass through a loader."""

    loss: float
    accuracy: float
    samples: int


@dataclass
class History:
    """What ``fit`` measured, one entry per epoch (validation entries are None without data).

    Example:
        >>> h = History()
        >>> h.append(epoch=1, train_loss=2.0, train_acc=0.2, val_loss=1.9, val_acc=0.3,
        ...          lr=1e-3, seconds=4.2)
        >>> h.best_epoch("val_acc"), len(h)
        (1, 1)
    """

    epoch: list[int] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)
    train_acc: list[float] = field(default_factory=list)
    val_loss: list[float | None] = field(default_factory=list)
    val_acc: list[float | None] = field(default_factory=list)
    lr: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)

    def append(self, **row: float | None) -> None:
        """Add one epoch's numbers (every field by name)."""
        for name in self.__dataclass_fields__:
            getattr(self, name).append(row[name])

    def __len__(self) -> int:
        return len(self.epoch)

    def as_dict(self) -> dict[str, list]:
        """The history as plain lists, e.g. for ``pandas.DataFrame(history.as_dict())``."""
        return asdict(self)

    def best_epoch(self, monitor: str = "val_loss") -> int:
        """The epoch with the best ``monitor`` value (lowest loss, highest accuracy)."""
        values = getattr(self, monitor)
        scored = [(v, e) for v, e in zip(values, self.epoch, strict=True) if v is not None]
        if not scored:
            raise ValueError(f"no {monitor} recorded: pass val_loader to fit() to measure it")
        pick = max if monitor.endswith("acc") else min
        return pick(scored, key=lambda ve: ve[0])[1]

    def __str__(self) -> str:
        def fmt(v: float | None, spec: str) -> str:
            return "-" if v is None else format(v, spec)

        lines = ["epoch  train_loss  train_acc  val_loss  val_acc        lr  seconds"]
        for i in range(len(self)):
            lines.append(
                f"{self.epoch[i]:>5}  {self.train_loss[i]:>10.4f}  {self.train_acc[i]:>9.2%}  "
                f"{fmt(self.val_loss[i], '8.4f'):>8}  {fmt(self.val_acc[i], '7.2%'):>7}  "
                f"{self.lr[i]:>8.2e}  {self.seconds[i]:>7.1f}"
            )
        return "\n".join(lines)


def _autocast(device: torch.device, amp_dtype: torch.dtype | None):
    return torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None)


def train_one_epoch(
    model: nn.Module,
    loader: Iterable,
    loss_fn: nn.Module,
    optimizer: torch.optim.Optimizer,
    device: torch.device,
    *,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
    amp_dtype: torch.dtype | None = None,
    scaler: torch.amp.GradScaler | None = None,
    grad_clip: float | None = None,
    progress: bool = True,
    desc: str = "train",
    frozen_bn_eval: bool = True,
    channels_last: bool = False,
) -> EpochResult:
    """Train ``model`` for one pass over ``loader`` and return mean loss and accuracy.

    The five steps of every iteration: forward, loss, ``zero_grad``, backward, step.
    ``scheduler``, when given, is stepped after every batch (one-cycle, warm-up).
    ``amp_dtype`` (``torch.bfloat16`` or ``torch.float16``) turns on mixed precision;
    float16 needs a ``scaler``. With ``frozen_bn_eval`` (the default), BatchNorm layers
    whose parameters are all frozen stay in eval mode, keeping their running statistics.
    ``channels_last`` hands batches to the model in NHWC memory order (the model should
    be converted too: ``model.to(memory_format=torch.channels_last)``).

    Example:
        >>> result = train_one_epoch(model, train_loader, nn.CrossEntropyLoss(),
        ...                          optimizer, get_device())  # doctest: +SKIP
        >>> print(f"{result.loss:.3f} {result.accuracy:.1%}")  # doctest: +SKIP
    """
    model.train()
    if frozen_bn_eval:
        keep_frozen_batchnorm_in_eval(model)
    loss_sum = torch.zeros((), device=device)
    correct = torch.zeros((), device=device, dtype=torch.long)
    seen = 0
    bar = progress_bar(loader, desc=desc, leave=False, disable=not progress)
    memory_format = torch.channels_last if channels_last else torch.preserve_format
    for step, (x, y) in enumerate(bar):
        x = x.to(device, non_blocking=True, memory_format=memory_format)
        with _autocast(device, amp_dtype):
            logits = model(x)
            y = check_labels(y, logits.shape[-1]).to(device, non_blocking=True)
            loss = loss_fn(logits, y)
        optimizer.zero_grad(set_to_none=True)
        if scaler is not None:
            scaler.scale(loss).backward()
            if grad_clip is not None:
                scaler.unscale_(optimizer)
                nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
            scaler.step(optimizer)
            scaler.update()
        else:
            loss.backward()
            if grad_clip is not None:
                nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
            optimizer.step()
        if scheduler is not None:
            scheduler.step()
        n = y.shape[0]
        seen += n
        loss_sum += loss.detach().float() * n
        correct += (logits.detach().argmax(dim=-1) == y).sum()
        if progress and step % 20 == 0:
            bar.set_postfix(loss=f"{loss.item():.3f}")
    if seen == 0:
        raise ValueError("the training loader yielded no batches: is the data set empty?")
    return EpochResult(loss_sum.item() / seen, correct.item() / seen, seen)


@torch.no_grad()
def evaluate(
    model: nn.Module,
    loader: Iterable,
    loss_fn: nn.Module | None = None,
    device: torch.device | str | None = None,
    *,
    amp_dtype: torch.dtype | None = None,
    progress: bool = False,
    tta_flip: bool = False,
    channels_last: bool = False,
) -> EpochResult:
    """Mean loss and accuracy of ``model`` on ``loader``, in eval mode, without gradients.

    ``model.eval()`` matters: it switches dropout off and makes BatchNorm use its
    running statistics instead of the batch's. ``tta_flip`` (test-time augmentation)
    averages the logits of each image and its mirror image: twice the compute, usually
    a few tenths of a point more accuracy for a network trained with random flips.

    Example:
        >>> result = evaluate(model, test_loader)  # doctest: +SKIP
        >>> print(f"test accuracy {result.accuracy:.1%}")  # doctest: +SKIP
    """
    device = torch.device(device) if device is not None else next(model.parameters()).device
    loss_fn = loss_fn or nn.CrossEntropyLoss()
    was_training = model.training
    model.eval()
    loss_sum = torch.zeros((), device=device)
    correct = torch.zeros((), device=device, dtype=torch.long)
    seen = 0
    memory_format = torch.channels_last if channels_last else torch.preserve_format
    try:
        for x, y in progress_bar(loader, desc="eval", leave=False, disable=not progress):
            x = x.to(device, non_blocking=True, memory_format=memory_format)
            with _autocast(device, amp_dtype):
                logits = model(x)
                if tta_flip:
                    logits = (logits + model(x.flip(-1))) / 2
                y = check_labels(y, logits.shape[-1]).to(device, non_blocking=True)
                loss = loss_fn(logits, y)
            seen += y.shape[0]
            loss_sum += loss.float() * y.shape[0]
            correct += (logits.argmax(dim=-1) == y).sum()
    finally:
        model.train(was_training)
    if seen == 0:
        raise ValueError("the evaluation loader yielded no batches: is the data set empty?")
    return EpochResult(loss_sum.item() / seen, correct.item() / seen, seen)


def _amp_dtype(amp: bool | str, device: torch.device) -> torch.dtype | None:
    if not amp:
        return None
    if device.type != "cuda":
        warnings.warn(
            f"amp=True is for CUDA GPUs; on {device.type} training runs in float32.", stacklevel=3
        )
        return None
    if amp == "fp16":
        return torch.float16
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def fit(
    model: nn.Module,
    train_loader: Iterable,
    val_loader: Iterable | None = None,
    *,
    epochs: int = 10,
    optimizer: torch.optim.Optimizer | None = None,
    lr: float = 1e-3,
    loss_fn: nn.Module | None = None,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
    scheduler_interval: str = "epoch",
    device: torch.device | str | None = None,
    amp: bool | str = False,
    grad_clip: float | None = None,
    early_stopping: int | None = None,
    monitor: str = "val_loss",
    keep_best: bool = False,
    epoch_start: Sequence[Callable[[int], None]] = (),
    epoch_end: Sequence[Callable[[int, History], None]] = (),
    frozen_bn_eval: bool = True,
    checkpoint: str | Path | None = None,
    resume: bool = False,
    channels_last: bool = False,
    compile: bool = False,
    label_smoothing: float = 0.0,
    tta_flip: bool = False,
    progress: bool = True,
) -> History:
    """Train ``model`` for ``epochs`` epochs, evaluating after each, and return the History.

    Args:
        optimizer: defaults to Adam over all parameters with ``lr`` (frozen ones have no
            gradient and are skipped, until something unfreezes them).
        loss_fn: defaults to ``nn.CrossEntropyLoss(label_smoothing=label_smoothing)``.
        scheduler: stepped once per epoch (``scheduler_interval="epoch"``) or once
            per batch (``"step"``, for one-cycle and warm-up schedules).
            ``ReduceLROnPlateau`` is stepped with the monitored value.
        device: defaults to :func:`cnnlab.settings.get_device`; the model is moved there.
        amp: mixed precision on CUDA (``True`` picks bfloat16 where supported, ``"fp16"``
            forces float16 with a gradient scaler); ignored with a warning elsewhere.
        grad_clip: clip the gradient norm to this value.
        early_stopping: stop after this many epochs without improvement in ``monitor``.
        monitor: ``"val_loss"``, ``"val_acc"``, ``"train_loss"`` or ``"train_acc"``.
        keep_best: restore the weights of the best epoch (by ``monitor``) at the end.
        epoch_start: callables run as ``f(epoch)`` before each epoch (1-based), e.g.
            :class:`cnnlab.freezing.GradualUnfreezing`.
        epoch_end: callables run as ``f(epoch, history)`` after each epoch, e.g.
            :class:`cnnlab.debug.TensorBoardLogger`.
        frozen_bn_eval: keep fully frozen BatchNorm layers in eval mode while training.
        checkpoint: a file to save a full training checkpoint to after every epoch
            (atomically: an interrupted save keeps the previous one).
        resume: continue from ``checkpoint`` when it exists: model, optimizer, scheduler,
            History, random generators and the loader's shuffling order are restored,
            so the run ends exactly as an uninterrupted one would (on CPU, with
            ``num_workers=0``: the random state of worker processes, which drives data
            augmentation there, cannot be saved; a warning says so).
        progress: show ``tqdm`` progress bars.

    Example:
        >>> model = SimpleCNN()
        >>> history = fit(model, train_loader, val_loader, epochs=5)  # doctest: +SKIP
        >>> print(history)  # doctest: +SKIP
    """
    if scheduler_interval not in ("epoch", "step"):
        raise ValueError(
            f"scheduler_interval must be 'epoch' or 'step', got {scheduler_interval!r}"
        )
    if val_loader is None and monitor.startswith("val_"):
        monitor = "train" + monitor[3:]
    device = torch.device(device) if device is not None else get_device()
    model.to(device)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    if compile:
        model.compile()
    loss_fn = loss_fn or nn.CrossEntropyLoss(label_smoothing=label_smoothing)
    if optimizer is None:
        optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    amp_dtype = _amp_dtype(amp, device)
    scaler = torch.amp.GradScaler("cuda") if amp_dtype == torch.float16 else None
    plateau = isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau)
    step_scheduler = scheduler if scheduler_interval == "step" and not plateau else None

    history = History()
    best_value, best_state, stale = None, None, 0
    generator = getattr(train_loader, "generator", None)
    first_epoch = 1
    if resume and checkpoint is not None and Path(checkpoint).exists():
        state = load_checkpoint(checkpoint, model, optimizer, scheduler, restore_rng=True,
                                loader_generator=generator)  # fmt: skip
        history = History(**state["history"])
        first_epoch = state["epoch"] + 1
        best_value, stale = state["extra"]["best_value"], state["extra"]["stale"]
        best_state = state["extra"]["best_state"]
        workers = getattr(train_loader, "num_workers", 0)
        if workers:
            warnings.warn(
                f"resuming with num_workers={workers}: the worker processes' random state "
                "(random augmentation, shuffling seeds) is not in the checkpoint, so the "
                "resumed epochs differ slightly from an uninterrupted run. Build the loader "
                "with num_workers=0 when you need an exact repeat.",
                stacklevel=2,
            )
        if progress:
            tqdm.write(f"resumed from {checkpoint} after epoch {state['epoch']}")
    better = (lambda a, b: a > b) if monitor.endswith("acc") else (lambda a, b: a < b)
    bar = tqdm(range(first_epoch, epochs + 1), desc="epochs", disable=not progress,
               initial=first_epoch - 1, total=epochs)  # fmt: skip
    for epoch in bar:
        for callback in epoch_start:
            callback(epoch)
        start, lr_now = time.perf_counter(), optimizer.param_groups[0]["lr"]
        train = train_one_epoch(
            model, train_loader, loss_fn, optimizer, device,
            scheduler=step_scheduler, amp_dtype=amp_dtype, scaler=scaler,
            grad_clip=grad_clip, progress=progress, desc=f"epoch {epoch}",
            frozen_bn_eval=frozen_bn_eval, channels_last=channels_last,
        )  # fmt: skip
        val = (
            evaluate(
                model,
                val_loader,
                loss_fn,
                device,
                amp_dtype=amp_dtype,
                tta_flip=tta_flip,
                channels_last=channels_last,
            )  # fmt: skip
            if val_loader
            else None
        )
        history.append(
            epoch=epoch,
            train_loss=train.loss,
            train_acc=train.accuracy,
            val_loss=val.loss if val else None,
            val_acc=val.accuracy if val else None,
            lr=lr_now,
            seconds=time.perf_counter() - start,
        )
        for callback in epoch_end:
            callback(epoch, history)
        value = getattr(history, monitor)[-1]
        if plateau:
            scheduler.step(value)
        elif scheduler is not None and scheduler_interval == "epoch":
            scheduler.step()
        bar.set_postfix(
            loss=f"{train.loss:.3f}", acc=f"{train.accuracy:.1%}",
            **({"val_acc": f"{val.accuracy:.1%}"} if val else {}),
        )  # fmt: skip
        if best_value is None or better(value, best_value):
            best_value, stale = value, 0
            if keep_best:
                best_state = copy.deepcopy(model.state_dict())
        else:
            stale += 1
        if checkpoint is not None:
            save_checkpoint(checkpoint, model, optimizer, scheduler, epoch, history,
                            extra={"best_value": best_value, "stale": stale,
                                   "best_state": best_state},
                            loader_generator=generator)  # fmt: skip
        if early_stopping is not None and stale >= early_stopping:
            if progress:
                tqdm.write(f"early stopping: no better {monitor} for {stale} epochs")
            break
    if keep_best and best_state is not None:
        model.load_state_dict(best_state)
    return history

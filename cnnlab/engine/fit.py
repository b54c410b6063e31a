"""``fit``: train for a number of epochs, evaluating after each, with callbacks.

The loop over batches is :func:`cnnlab.engine.loop.train_one_epoch`; what is not the loop
(checkpoints, early stopping, logging, unfreezing schedules) lives in
:mod:`cnnlab.callbacks`. Under ``torchrun`` the model is trained inside a
``DistributedDataParallel`` wrapper (:class:`Replicas`), wrapped again whenever a callback
changes which parameters train.
"""

from __future__ import annotations

import contextlib
import math
import time
import warnings
from collections.abc import Iterable, Sequence

import torch
from torch import nn

from .. import distributed
from ..callbacks import Callback, FitState, sorted_callbacks
from ..history import History
from ..progress import tqdm
from ..settings import autocast_dtype, get_device, grad_scaler
from .loop import evaluate, train_one_epoch
from .options import check_fit_options, refuse_legacy

__all__ = ["Replicas", "default_optimizer", "dtype_name", "fit"]


@contextlib.contextmanager
def cudnn_benchmark(device: torch.device):
    """Let cuDNN time its convolution algorithms once per input shape and keep the fastest
    (training batches have fixed shapes); restored afterwards. Left off when you asked for
    reproducible results (``torch.use_deterministic_algorithms(True)`` or
    ``torch.backends.cudnn.deterministic = True``, as :func:`cnnlab.seed_everything`
    advises): the timing run may pick a different algorithm each time.

    Example:
        >>> with cudnn_benchmark(torch.device("cpu")):
        ...     pass
    """
    wanted = not (
        torch.are_deterministic_algorithms_enabled() or torch.backends.cudnn.deterministic
    )
    if device.type != "cuda" or not wanted:
        yield
        return
    before = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = True
    try:
        yield
    finally:
        torch.backends.cudnn.benchmark = before


def default_optimizer(model: nn.Module, lr: float | None, device: torch.device):
    """``fit``'s optimizer when none is given: Adam over every parameter at ``lr`` (1e-3),
    fused on CUDA (one kernel for all parameters; with float16 it also lets the gradient
    scaler step without reading a value back from the GPU).

    Example:
        >>> default_optimizer(nn.Linear(2, 2), None, torch.device("cpu")).defaults["lr"]
        0.001
    """
    fused = True if device.type == "cuda" else None
    return torch.optim.Adam(model.parameters(), lr=1e-3 if lr is None else lr, fused=fused)


def dtype_name(dtype: torch.dtype | None) -> str:
    """How ``History.precision`` names an autocast dtype (None: float32).

    Example:
        >>> dtype_name(torch.bfloat16), dtype_name(None)
        ('bfloat16', 'float32')
    """
    return "float32" if dtype is None else str(dtype).removeprefix("torch.")


def _trainable(model: nn.Module) -> tuple[bool, ...]:
    return tuple(p.requires_grad for p in model.parameters())


class Replicas:
    """The module that training steps call: the model itself, or under torchrun the model
    in ``DistributedDataParallel`` (then compiled, in PyTorch's recommended order).

    DDP registers the parameters that train when it wraps the model and averages only
    their gradients. A callback that freezes or unfreezes parameters after the wrap
    (gradual unfreezing, a bias that stops training) would let the replicas drift apart
    silently, or stop with "Expected to have finished reduction". :meth:`module` wraps
    the model again whenever the set of trainable parameters has changed since the wrap.

    Example:
        >>> replicas = Replicas(nn.Linear(2, 2), torch.device("cpu"))
        >>> replicas.module() is replicas.model  # one process: the model itself
        True
    """

    def __init__(self, model: nn.Module, device: torch.device, compile: bool = False) -> None:
        self.model, self.device, self.compile = model, device, compile
        self.wrapped: nn.Module | None = None
        self.trainable: tuple[bool, ...] | None = None

    def module(self) -> nn.Module:
        """The module to train with now (wrapped again if the trainable set changed)."""
        trainable = _trainable(self.model)
        if self.wrapped is not None and (
            trainable == self.trainable or not distributed.is_distributed()
        ):
            return self.wrapped
        if self.wrapped is not None and distributed.is_main_process():
            print("the trainable parameters changed: wrapping the model in "
                  "DistributedDataParallel again so that every process averages them")  # fmt: skip
        self.trainable = trainable
        wrapped = distributed.wrap(self.model, self.device)
        if self.compile:
            wrapped.compile()  # after the DDP wrap, as PyTorch advises
        self.wrapped = wrapped
        return wrapped


def _finish(state: FitState, callbacks: Sequence[Callback]) -> History:
    for callback in callbacks:
        callback.on_fit_end(state)
    return state.history


def fit(
    model: nn.Module,
    train_loader: Iterable,
    val_loader: Iterable | None = None,
    *,
    epochs: int = 10,
    optimizer: torch.optim.Optimizer | None = None,
    lr: float | None = None,
    loss_fn: nn.Module | None = None,
    label_smoothing: float | None = None,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
    scheduler_interval: str = "epoch",
    scheduler_monitor: str | None = None,
    device: torch.device | str | None = None,
    precision: str = "fp32",
    grad_clip: float | None = None,
    accumulate: int = 1,
    callbacks: Sequence[Callback] = (),
    channels_last: bool = False,
    compile: bool = False,
    tta_flip: bool = False,
    tta_translate: int = 0,
    frozen_bn_eval: bool = True,
    progress: bool = True,
    **legacy,
) -> History:
    """Train ``model`` for ``epochs`` epochs, evaluating after each, and return the History.

    Every option and every callback's ``monitor`` is checked against the others before the
    first batch is drawn (:func:`~cnnlab.engine.options.check_fit_options`); a conflict
    stops ``fit`` with a message that names the fix.

    Args:
        optimizer: defaults to Adam over all parameters at ``lr`` (1e-3 unless given;
            frozen ones have no gradient and are skipped until something unfreezes them),
            fused on CUDA. Passing both ``optimizer`` and ``lr`` is refused.
        loss_fn: defaults to ``nn.CrossEntropyLoss(label_smoothing=label_smoothing)``.
            Passing both ``loss_fn`` and ``label_smoothing`` is refused.
        label_smoothing: aim the default loss at ``1 - e + e / K`` for the true class of
            ``K`` instead of 1 (0.82 for ``e = 0.2`` and ten classes).
        scheduler: built on ``optimizer``; stepped once per epoch
            (``scheduler_interval="epoch"``) or once per batch (``"step"``, for one-cycle
            and warm-up schedules). ``ReduceLROnPlateau`` is stepped with
            ``scheduler_monitor`` (default ``"val_loss"``), and its ``mode`` must match it.
        device: defaults to :func:`cnnlab.settings.get_device`; the model is moved there.
        precision: ``"fp32"`` (default), ``"auto"``, ``"bf16"`` or ``"fp16"``: see
            :func:`cnnlab.settings.autocast_dtype`. float16 adds a gradient scaler, whose
            state :class:`~cnnlab.callbacks.ModelCheckpoint` saves. ``History.precision``
            records the dtype each epoch ran in.
        grad_clip: clip the gradient norm to this value.
        accumulate: gradient accumulation: step the optimizer once every ``accumulate``
            batches, on their gradients added up (each loss divided by the group's size),
            to train with an effective batch that does not fit in memory. A per-step
            scheduler and ``on_step_end`` callbacks count optimizer steps, so size a
            one-cycle schedule with ``math.ceil(len(train_loader) / accumulate)`` steps
            per epoch. BatchNorm still sees the small batches.
        callbacks: :mod:`cnnlab.callbacks` objects, called in the documented order:
            ``ModelCheckpoint`` (atomic saves, exact resume), ``EarlyStopping``,
            ``TensorBoard``, ``GradualUnfreezing``, ``ProgressiveResizing``, your own.
        channels_last: convert the model and every batch to NHWC memory order (faster
            convolutions on GPUs' tensor cores, and on many CPUs).
        compile: ``torch.compile`` the model (fuses operations; pays on GPUs, often not on
            small CPU runs; the model stays compiled afterwards). Under torchrun the DDP
            wrapper is compiled instead, after wrapping.
        tta_flip: validate on each image and its mirror image, averaged (needs val_loader).
        tta_translate: also on copies shifted by this many pixels (see
            :func:`~cnnlab.engine.loop.tta_logits`).
        frozen_bn_eval: keep fully frozen BatchNorm layers in eval mode while training.
        progress: show ``tqdm`` progress bars.

    Example:
        >>> from cnnlab.callbacks import EarlyStopping, ModelCheckpoint
        >>> history = fit(SimpleCNN(), train_loader, val_loader, epochs=20, precision="auto",
        ...               callbacks=[EarlyStopping("val_acc", patience=3),
        ...                          ModelCheckpoint("runs/last.pt", resume=True)])  # doctest: +SKIP
        >>> print(history)  # doctest: +SKIP
    """
    refuse_legacy(legacy)
    device = torch.device(device) if device is not None else get_device()
    dtype = autocast_dtype(device, precision)  # refuses unknown or unsupported precisions
    callbacks = sorted_callbacks(callbacks)
    check_fit_options(model, train_loader, val_loader, epochs=epochs, optimizer=optimizer, lr=lr,
                      loss_fn=loss_fn, label_smoothing=label_smoothing, scheduler=scheduler,
                      scheduler_interval=scheduler_interval, scheduler_monitor=scheduler_monitor,
                      grad_clip=grad_clip, tta_flip=tta_flip, callbacks=callbacks,
                      tta_translate=tta_translate, accumulate=accumulate)  # fmt: skip

    model.to(device)
    distributed.broadcast_weights(model)  # every process starts from rank 0's weights
    if channels_last:
        model.to(memory_format=torch.channels_last)
    if compile and not distributed.is_distributed():
        model.compile()  # in place; under torchrun the DDP wrapper is compiled instead
    loss_fn = loss_fn or nn.CrossEntropyLoss(label_smoothing=label_smoothing or 0.0)
    optimizer = optimizer or default_optimizer(model, lr, device)
    replicas = Replicas(model, device, compile=compile and distributed.is_distributed())
    main = distributed.is_main_process()
    state = FitState(model=model, optimizer=optimizer, loss_fn=loss_fn, device=device,
                     train_loader=train_loader, val_loader=val_loader, epochs=epochs,
                     scheduler=scheduler, scaler=grad_scaler(device, dtype),
                     is_main_process=main, callbacks=callbacks)  # fmt: skip
    plateau = isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau)
    per_step = scheduler if scheduler_interval == "step" and not plateau else None
    show = progress and main

    def on_step(loss: torch.Tensor) -> None:
        state.step += 1
        state.batch_loss = loss
        for callback in callbacks:
            callback.on_step_end(state)

    with cudnn_benchmark(device):
        for callback in callbacks:  # restore first (ModelCheckpoint), so that every
            callback.on_resume(state)  # on_fit_start below sees the resumed state
        if state.nothing_to_train:
            return _finish(state, callbacks)
        for callback in callbacks:
            callback.on_fit_start(state)
        bar = tqdm(range(state.epoch + 1, epochs + 1), desc="epochs", disable=not show,
                   initial=state.epoch, total=epochs)  # fmt: skip
        for epoch in bar:
            state.epoch = epoch
            distributed.set_epoch(train_loader, epoch)
            for callback in callbacks:
                callback.on_epoch_start(state)
            start = time.perf_counter()
            lr_now = max(group["lr"] for group in optimizer.param_groups)
            train = train_one_epoch(
                replicas.module(), train_loader, loss_fn, optimizer, device,
                scheduler=per_step, amp_dtype=dtype, scaler=state.scaler,
                grad_clip=grad_clip, progress=show, desc=f"epoch {epoch}",
                frozen_bn_eval=frozen_bn_eval, channels_last=channels_last, on_step=on_step,
                accumulate=accumulate,
            )  # fmt: skip
            val = None
            if val_loader is not None:
                val = evaluate(model, val_loader, loss_fn, device, precision=precision,
                               tta_flip=tta_flip, tta_translate=tta_translate,
                               channels_last=channels_last)  # fmt: skip
            state.history.append(
                epoch=epoch, train_loss=train.loss, train_acc=train.accuracy,
                val_loss=val.loss if val else None, val_acc=val.accuracy if val else None,
                lr=lr_now, seconds=time.perf_counter() - start, precision=dtype_name(dtype),
            )  # fmt: skip
            if not math.isfinite(train.loss):
                warnings.warn(f"the training loss is {train.loss} in epoch {epoch}: training "
                              "diverged. Lower the learning rate, or clip gradients "
                              "(grad_clip=1.0).", stacklevel=2)  # fmt: skip
            if plateau:
                scheduler.step(getattr(state.history, scheduler_monitor or "val_loss")[-1])
            elif scheduler is not None and scheduler_interval == "epoch":
                scheduler.step()
            for callback in callbacks:
                callback.on_epoch_end(state)
            bar.set_postfix(
                loss=f"{train.loss:.3f}", acc=f"{train.accuracy:.1%}",
                **({"val_acc": f"{val.accuracy:.1%}"} if val else {}),
            )  # fmt: skip
            if state.stop_training:
                break
        return _finish(state, callbacks)

"""The :class:`TensorBoard` callback: losses, accuracies, learning rate, weight histograms,
sample images and the model graph, written to a run folder."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from ..models import unwrap
from .base import Callback, FitState


class TensorBoard(Callback):
    """Write what ``fit`` does to a TensorBoard run folder (Keras' name).

    Logged: the training loss every ``log_every_n_steps`` optimizer steps; after every
    epoch, the History's losses, accuracies, learning rate and seconds; a histogram of
    every weight (``histograms=True``); at the start (not again after a resume), a grid
    of ``sample_batch``'s images, un-normalised with ``mean`` and ``std`` (default: those
    of the training loader's ``Normalize``), and the model graph. Only the main process
    writes, under torchrun.

    Open the logs in JupyterLab or Colab with ``%load_ext tensorboard`` then
    ``%tensorboard --logdir runs``; in a terminal with ``tensorboard --logdir runs``.

    Example:
        >>> board = TensorBoard("runs/simplecnn", sample_batch=next(iter(train_loader)))  # doctest: +SKIP
        >>> fit(model, train_loader, val_loader, epochs=5, callbacks=[board])  # doctest: +SKIP
    """

    def __init__(self, log_dir: str | Path, sample_batch: tuple | None = None, *,
                 mean: Sequence[float] | None = None, std: Sequence[float] | None = None,
                 histograms: bool = True, log_every_n_steps: int = 50) -> None:  # fmt: skip
        self.log_dir = Path(log_dir)
        self.sample_batch, self.histograms = sample_batch, histograms
        self.mean, self.std = mean, std  # None: read from the training loader at the start
        self.log_every_n_steps = log_every_n_steps
        self.writer = None

    def on_fit_start(self, state: FitState) -> None:
        if not state.is_main_process:
            return
        from torch.utils.tensorboard import SummaryWriter

        from ..data.transforms import denormalize

        self.writer = SummaryWriter(str(self.log_dir))
        if self.sample_batch is not None and state.epoch == 0:  # not again after a resume
            images = self.sample_batch[0][:32].detach().cpu().float()
            mean, std = self._normalisation(state.train_loader)
            self.writer.add_images("samples", denormalize(images, mean, std), 0)
            self._add_graph(unwrap(state.model), images[:1], state.device)

    def _normalisation(self, loader) -> tuple[Sequence[float], Sequence[float]]:
        """The mean and std to undo for the sample images: given, else the loader's own
        (a TensorLoader's, or the Normalize in its data set's transform: ImageNet's for
        photos), else CIFAR-10's."""
        from ..data.transforms import CIFAR10_MEAN, CIFAR10_STD, find_normalize

        if self.mean is not None and self.std is not None:
            return self.mean, self.std
        found = find_normalize(loader)
        return found if found is not None else (CIFAR10_MEAN, CIFAR10_STD)

    def _add_graph(self, model: nn.Module, example: torch.Tensor, device: torch.device) -> None:
        was_training = model.training
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # tracer warnings about Python-side checks
                model.eval()
                self.writer.add_graph(model, example.to(device))
        except Exception as error:  # a graph is a nice-to-have: say so and go on
            warnings.warn(f"TensorBoard: the model graph could not be traced ({error})",
                          stacklevel=3)  # fmt: skip
        finally:
            model.train(was_training)

    def on_step_end(self, state: FitState) -> None:
        if self.writer is not None and state.step % self.log_every_n_steps == 0:
            self.writer.add_scalar("loss/train_step", state.batch_loss.item(), state.step)

    def on_epoch_end(self, state: FitState) -> None:
        if self.writer is None:
            return
        h, epoch = state.history, state.epoch
        for tag, values in [("loss/train", h.train_loss), ("loss/val", h.val_loss),
                            ("accuracy/train", h.train_acc), ("accuracy/val", h.val_acc),
                            ("learning_rate", h.lr), ("seconds_per_epoch", h.seconds)]:  # fmt: skip
            if values and values[-1] is not None:
                self.writer.add_scalar(tag, values[-1], epoch)
        if self.histograms:
            for name, p in unwrap(state.model).named_parameters():
                self.writer.add_histogram(f"weights/{name}", p.detach().float().cpu(), epoch)
        self.writer.flush()

    def on_fit_end(self, state: FitState) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


__all__ = ["TensorBoard"]

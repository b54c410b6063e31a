"""TensorBoard logging for ``fit``: scalars, learning rate, weight histograms, sample
images and the model graph."""

from __future__ import annotations

import warnings
from pathlib import Path

import torch
from torch import nn

from ..data.transforms import CIFAR10_MEAN, CIFAR10_STD, denormalize


class TensorBoardLogger:
    """Write what ``fit`` does to a TensorBoard run directory.

    Pass it as ``fit(..., epoch_end=[logger])``. At creation it logs a grid of sample
    images and the model graph (from ``sample_batch``); after every epoch, the losses,
    accuracies and learning rate of the History, and a histogram of every weight tensor.

    Open the logs in JupyterLab or Colab with ``%load_ext tensorboard`` then
    ``%tensorboard --logdir runs``; in a terminal with ``tensorboard --logdir runs``.

    Example:
        >>> logger = TensorBoardLogger("runs/simplecnn", model, next(iter(train_loader)))  # doctest: +SKIP
        >>> fit(model, train_loader, val_loader, epochs=5, epoch_end=[logger])  # doctest: +SKIP
        >>> logger.close()  # doctest: +SKIP
    """

    def __init__(
        self,
        log_dir: str | Path,
        model: nn.Module,
        sample_batch: tuple[torch.Tensor, torch.Tensor] | None = None,
        mean: tuple[float, ...] = CIFAR10_MEAN,
        std: tuple[float, ...] = CIFAR10_STD,
        histograms: bool = True,
    ) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.log_dir = Path(log_dir)
        self.model, self.histograms = model, histograms
        self.writer = SummaryWriter(str(self.log_dir))
        if sample_batch is not None:
            images = sample_batch[0][:32].detach().cpu()
            self.writer.add_images("samples", denormalize(images, mean, std).clamp(0, 1), 0)
            self._add_graph(images[:1])

    def _add_graph(self, example: torch.Tensor) -> None:
        device = next(self.model.parameters()).device
        was_training = self.model.training
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # tracer warnings about Python-side checks
                self.model.eval()
                self.writer.add_graph(self.model, example.to(device))
        except Exception as error:  # a graph is a nice-to-have: say so and go on
            warnings.warn(f"TensorBoard: the model graph could not be traced ({error})",
                          stacklevel=3)  # fmt: skip
        finally:
            self.model.train(was_training)

    def __call__(self, epoch: int, history) -> None:
        i = len(history) - 1
        for tag, values in [("loss/train", history.train_loss), ("loss/val", history.val_loss),
                            ("accuracy/train", history.train_acc),
                            ("accuracy/val", history.val_acc), ("learning_rate", history.lr),
                            ("seconds_per_epoch", history.seconds)]:  # fmt: skip
            if values and values[i] is not None:
                self.writer.add_scalar(tag, values[i], epoch)
        if self.histograms:
            for name, p in self.model.named_parameters():
                self.writer.add_histogram(f"weights/{name}", p.detach().cpu(), epoch)
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()

"""Figures: image grids, learning curves, confusion matrices, mistakes.

Every function returns the matplotlib ``Figure`` so a notebook can show or save it.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns
import torch
from matplotlib.figure import Figure
from matplotlib.layout_engine import ConstrainedLayoutEngine
from matplotlib.ticker import MaxNLocator, PercentFormatter

from . import settings
from .data.transforms import CIFAR10_MEAN, CIFAR10_STD, denormalize
from .history import History


def smoke_stamp(fig: Figure) -> Figure:
    """In a smoke run (``CNNLAB_FAST=1``), write across the bottom of ``fig`` that its
    numbers mean nothing; every result plot of cnnlab does this. Returns ``fig``.

    Example:
        >>> fig = smoke_stamp(plt.figure())
    """
    if settings.fast_mode():
        room = min(0.12, 0.2 / fig.get_figheight())  # about two lines of 8-point text
        engine = fig.get_layout_engine()
        if isinstance(engine, ConstrainedLayoutEngine):
            engine.set(rect=(0, room, 1, 1 - room))
        elif fig.axes:
            fig.tight_layout(rect=(0, room, 1, 1))  # the axes' labels above the stamp
        fig.text(0.5, 0.005, settings.SMOKE_TAG, ha="center", va="bottom", fontsize=8,
                 color="#b00020", wrap=True)  # fmt: skip
    return fig


def epoch_axis(ax, epochs: Sequence[int]) -> None:
    """Whole epochs on the horizontal axis: each epoch a tick when there are few (one epoch
    would otherwise get ticks at 0.96, 0.98, 1.00...), whole numbers when there are many.

    Example:
        >>> fig, ax = plt.subplots(); epoch_axis(ax, [1]); [float(t) for t in ax.get_xticks()]
        [1.0]
    """
    if len(epochs) <= 12:
        ax.set_xticks(list(epochs))
        if len(epochs) == 1:
            ax.set_xlim(epochs[0] - 1, epochs[0] + 1)
    else:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def _to_display(images: torch.Tensor, mean, std) -> np.ndarray:
    """(N, C, H, W) tensors -> (N, H, W, C) arrays in [0, 1]; un-normalised if needed."""
    images = images.detach().cpu().float()
    if mean is not None and std is not None:
        images = denormalize(images, mean, std)
    elif images.min() < 0 or images.max() > 1:
        images = (images - images.min()) / (images.max() - images.min() + 1e-8)
    out = images.permute(0, 2, 3, 1).numpy()
    return out[..., 0] if out.shape[-1] == 1 else out


def show_images(
    images: torch.Tensor,
    labels: Sequence[int] | torch.Tensor | None = None,
    class_names: Sequence[str] | None = None,
    *,
    predictions: Sequence[int] | torch.Tensor | None = None,
    mean: Sequence[float] | None = CIFAR10_MEAN,
    std: Sequence[float] | None = CIFAR10_STD,
    ncols: int = 8,
    size: float = 1.4,
) -> Figure:
    """Show a batch of (normalised) images in a grid, labelled with their classes.

    With ``predictions``, each title reads "predicted (true)", red when wrong.
    Pass ``mean=None, std=None`` for images that were not normalised.

    Example:
        >>> images, labels = next(iter(train_loader))  # doctest: +SKIP
        >>> show_images(images[:16], labels[:16], train_set.classes)  # doctest: +SKIP
    """
    pics = _to_display(images, mean, std)
    n = len(pics)
    ncols = max(1, min(ncols, n))
    nrows = max(1, -(-n // ncols))
    title_room = 0.5 if predictions is not None else 0.25  # "predicted\n(true)": two lines
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(ncols * size, nrows * (size + title_room)), squeeze=False
    )
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i >= n:
            continue
        ax.imshow(pics[i], cmap="gray" if pics[i].ndim == 2 else None)

        def name(k: int) -> str:
            return class_names[k] if class_names is not None else str(k)

        if predictions is not None and labels is not None:
            p, t = int(predictions[i]), int(labels[i])
            ax.set_title(f"{name(p)}\n({name(t)})", fontsize=8, color="green" if p == t else "red")
        elif labels is not None:
            ax.set_title(name(int(labels[i])), fontsize=8)
    fig.tight_layout()
    return fig


def accuracy_axis(ax, values: Sequence[float], span: float = 0.1) -> None:
    """Show accuracies (fractions) as percentages over at least ``span`` (10 points), within
    0-100%, so that close values do not get seven ticks that all read "11%".

    Example:
        >>> fig, ax = plt.subplots(); accuracy_axis(ax, [0.105, 0.108])
        >>> [round(float(limit), 2) for limit in ax.get_ylim()]
        [0.05, 0.16]
    """
    low, high = (float(min(values)), float(max(values))) if len(values) else (0.0, 1.0)
    middle, half = (low + high) / 2, max(high - low, span) / 2 * 1.1
    bottom = min(max(0.0, middle - half), 1.0 - 2 * half)
    ax.set_ylim(max(0.0, bottom), min(1.0, max(0.0, bottom) + 2 * half))
    ax.yaxis.set_major_formatter(PercentFormatter(xmax=1.0, decimals=0))


def plot_history(history: History, title: str | None = None) -> Figure:
    """Learning curves: loss and accuracy per epoch, training and validation.

    A validation loss that rises while the training loss keeps falling is
    overfitting; both staying high is underfitting.

    Example:
        >>> plot_history(history)  # doctest: +SKIP
    """
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 3.6))
    ep = history.epoch
    ax_loss.plot(ep, history.train_loss, "o-", label="train")
    ax_acc.plot(ep, history.train_acc, "o-", label="train")
    if any(v is not None for v in history.val_loss):
        ax_loss.plot(ep, history.val_loss, "s-", label="validation")
        ax_acc.plot(ep, history.val_acc, "s-", label="validation")
    ax_loss.set(xlabel="epoch", ylabel="loss", title="loss")
    ax_acc.set(xlabel="epoch", ylabel="accuracy", title="accuracy")
    accuracy_axis(ax_acc, [*history.train_acc, *(v for v in history.val_acc if v is not None)])
    for ax in (ax_loss, ax_acc):
        epoch_axis(ax, ep)
        ax.grid(alpha=0.3)
        ax.legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return smoke_stamp(fig)


def plot_confusion_matrix(
    cm: np.ndarray,
    class_names: Sequence[str],
    normalize: bool = True,
    title: str = "confusion matrix",
) -> Figure:
    """Heat map of a confusion matrix; rows are true classes, columns predictions.

    ``normalize=True`` shows each row as fractions, so classes of different sizes
    compare fairly.

    Example:
        >>> plot_confusion_matrix(confusion_matrix(p.y_true, p.y_pred, 10), classes)  # doctest: +SKIP
    """
    data = cm
    if normalize:
        data = cm.astype(float) / np.clip(cm.sum(axis=1, keepdims=True), 1, None)
    size = max(5.0, 0.55 * len(class_names) + 2)
    fig, ax = plt.subplots(figsize=(size, size * 0.85))
    sns.heatmap(
        data, annot=True, fmt=".2f" if normalize else "d",
        cmap="Blues", xticklabels=class_names, yticklabels=class_names, cbar=False, ax=ax,
        annot_kws={"fontsize": 7},
    )  # fmt: skip
    ax.set(xlabel="predicted", ylabel="true", title=title)
    fig.tight_layout()
    return smoke_stamp(fig)


def plot_per_class_accuracy(accuracy: Sequence[float], class_names: Sequence[str]) -> Figure:
    """Horizontal bars of each class's accuracy, worst at the top.

    Example:
        >>> plot_per_class_accuracy(per_class_accuracy(cm), classes)  # doctest: +SKIP
    """
    acc = np.asarray(accuracy, dtype=float)
    order = np.argsort(acc)
    fig, ax = plt.subplots(figsize=(6, 0.35 * len(acc) + 1))
    ax.barh([class_names[i] for i in order], acc[order], color="tab:blue")
    ax.set(xlim=(0, 1), xlabel="accuracy", title="accuracy per class")
    ax.xaxis.set_major_formatter(plt.FuncFormatter(lambda v, _: f"{v:.0%}"))
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    return smoke_stamp(fig)


@torch.no_grad()
def show_misclassified(
    model: torch.nn.Module,
    loader,
    class_names: Sequence[str],
    limit: int = 16,
    **kwargs,
) -> Figure:
    """Find up to ``limit`` images the model gets wrong and show "predicted (true)",
    taken in turn from each true class (a test set stored class by class would otherwise
    show the first class's mistakes only).

    Example:
        >>> show_misclassified(model, test_loader, test_set.classes)  # doctest: +SKIP
    """
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    per_class: dict[int, list[tuple[torch.Tensor, int, int]]] = {}
    enough = -(-limit // max(1, len(class_names)))  # mistakes wanted from each class
    try:
        with torch.no_grad():
            for x, y in loader:
                pred = model(x.to(device)).argmax(dim=-1).cpu()
                for i in (pred != y).nonzero().flatten().tolist():
                    found = per_class.setdefault(int(y[i]), [])
                    if len(found) < limit:
                        found.append((x[i], int(y[i]), int(pred[i])))
                if len(per_class) == len(class_names) and all(
                    len(found) >= enough for found in per_class.values()
                ):
                    break
    finally:
        model.train(was_training)
    picked = [item for row in itertools.zip_longest(*per_class.values()) for item in row if item]
    picked = picked[:limit]  # round robin over the true classes
    if not picked:
        fig, ax = plt.subplots(figsize=(4, 1))
        ax.axis("off")
        ax.text(0.5, 0.5, "no mistakes found", ha="center", va="center")
        return fig
    xs = torch.stack([item[0] for item in picked])
    ys, ps = ([item[k] for item in picked] for k in (1, 2))
    return smoke_stamp(show_images(xs, ys, class_names, predictions=ps, **kwargs))


def plot_strategies(results: Sequence, title: str = "fine-tuning strategies") -> Figure:
    """Test accuracy against training time, one point per strategy; the point's area shows
    the share of parameters trained (``results``: :class:`cnnlab.finetune.StrategyResult`).

    Example:
        >>> plot_strategies([run_strategy(s, ...) for s in STRATEGIES])  # doctest: +SKIP
    """
    fig, ax = plt.subplots(figsize=(7, 5.2))
    for number, r in enumerate(results, start=1):
        share = r.trainable / r.total if r.total else 0.0
        ax.scatter(r.seconds, r.accuracy, s=60 + 600 * share, alpha=0.6,
                   label=f"{number}  {r.description}: {settings.share(share)} of parameters trained")  # fmt: skip
        ax.annotate(str(number), (r.seconds, r.accuracy), ha="center", va="center",
                    fontsize=8, fontweight="bold")  # fmt: skip
    ax.set(xlabel="training time (s)", ylabel="test accuracy", title=title)
    low, high = min(r.accuracy for r in results), max(r.accuracy for r in results)
    pad = 0.12 * max(high - low, 0.02)  # room for the largest bubbles
    accuracy_axis(ax, [low - pad, high + pad], span=0.02)
    ax.grid(alpha=0.3)
    ax.margins(x=0.15)
    # The names go in a legend under the axes: labels beside the points overprint each
    # other whenever two strategies take about as long and score about the same.
    legend = ax.legend(loc="upper left", bbox_to_anchor=(0.0, -0.14), fontsize=8, frameon=False)
    for handle in legend.legend_handles:
        handle.set_sizes([40])
    fig.tight_layout()
    return smoke_stamp(fig)


def plot_time_to_accuracy(
    curves: dict[str, Sequence[Sequence[float]]],
    levels: Sequence[float] = (0.85, 0.90),
    title: str = "accuracy against training time",
) -> Figure:
    """The trade-off curve: accuracy against minutes of training, one line per recipe.

    ``curves`` maps a recipe's name to its ``(seconds, accuracy)`` points after each epoch,
    the last point being the final evaluation with test-time augmentation (drawn as a
    star); ``levels`` are drawn as dashed lines. The first recipe to cross a line is the
    faster one to that accuracy.

    Example:
        >>> fig = plot_time_to_accuracy({"fast": [(60, 0.7), (120, 0.84), (125, 0.86)]})
    """
    fig, ax = plt.subplots(figsize=(7.5, 4.2))
    points = []
    for name, curve in curves.items():
        (seconds, accuracy), final = zip(*curve[:-1], strict=True), curve[-1]
        line = ax.plot([s / 60 for s in seconds], accuracy, "o-", markersize=4, label=name)[0]
        ax.plot(final[0] / 60, final[1], "*", markersize=12, color=line.get_color())
        points += [*accuracy, final[1]]
    for level in levels:
        ax.axhline(level, color="grey", linestyle="--", linewidth=0.8)
    ax.plot([], [], "*", color="grey", markersize=10, label="final, with TTA")
    ax.set(xlabel="training time (minutes)", ylabel="test accuracy", title=title)
    accuracy_axis(ax, [*points, *levels], span=0.1)
    ax.set_xlim(left=0)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    return smoke_stamp(fig)


def plot_explanations(
    images: torch.Tensor,
    maps: dict[str, torch.Tensor],
    titles: Sequence[str] | None = None,
    *,
    mean: Sequence[float] | None = CIFAR10_MEAN,
    std: Sequence[float] | None = CIFAR10_STD,
    alpha: float = 0.5,
    size: float = 1.8,
) -> Figure:
    """Each image (a row) next to its maps (a column per method), drawn in the ``jet``
    colour map over a grey copy of the image (so that the image's own colours are not read
    as the map's), with a colour bar: red where the method says the pixels mattered most.

    ``maps`` is ``{"Grad-CAM": tensor (N, H, W), ...}`` from :mod:`cnnlab.explain`;
    ``titles`` label the rows; the course writes them "predicted (true)", as
    :func:`show_images` does.

    Example:
        >>> from cnnlab.explain import grad_cam, saliency
        >>> x = torch.rand(2, 3, 32, 32)
        >>> fig = plot_explanations(x, {"saliency": saliency(SimpleCNN(), x)}, mean=None, std=None)
    """
    pics = _to_display(images, mean, std)
    n, methods = len(pics), list(maps)
    height = n * (size + 0.3) + 0.9
    fig, axes = plt.subplots(n, len(methods) + 1, squeeze=False, layout="constrained",
                             figsize=((len(methods) + 1) * size, height))  # fmt: skip
    for i in range(n):
        axes[i, 0].imshow(pics[i], cmap="gray" if pics[i].ndim == 2 else None)
        axes[i, 0].set_title(titles[i] if titles else "image", fontsize=8)
        grey = pics[i] if pics[i].ndim == 2 else pics[i].mean(axis=-1)  # the map's colours only
        for j, name in enumerate(methods, start=1):
            axes[i, j].imshow(grey, cmap="gray", vmin=0, vmax=1)
            axes[i, j].imshow(maps[name][i].detach().cpu().float().numpy(), cmap="jet",
                              alpha=alpha, vmin=0, vmax=1)  # fmt: skip
            if i == 0:
                axes[i, j].set_title(name, fontsize=9)
        for ax in axes[i]:
            ax.axis("off")
    scale = plt.cm.ScalarMappable(cmap="jet", norm=plt.Normalize(0, 1))
    # pad is a fraction of the maps' height: a fixed 0.1 inch, or tall figures get a gap
    bar = fig.colorbar(scale, ax=axes[:, 1:], location="bottom", shrink=0.8, aspect=30,
                       pad=0.1 / height)  # fmt: skip
    bar.set_label("mattered: 0 least, 1 most (each map scaled on its own)", fontsize=8)
    bar.ax.tick_params(labelsize=7)
    return smoke_stamp(fig)

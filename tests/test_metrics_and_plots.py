import matplotlib.colors as mcolors
import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from torch import nn

from cnnlab.engine import History
from cnnlab.metrics import confusion_matrix, per_class_accuracy, predict_loader
from cnnlab.models import SimpleCNN
from cnnlab.plots import (
    plot_confusion_matrix,
    plot_history,
    plot_per_class_accuracy,
    show_images,
    show_misclassified,
)


class Constant(nn.Module):
    """Always predicts class `k`: a model whose mistakes we know in advance."""

    def __init__(self, k, num_classes=10):
        super().__init__()
        self.k, self.num_classes = k, num_classes
        self.dummy = nn.Parameter(torch.zeros(1))

    def forward(self, x):
        out = torch.zeros(x.shape[0], self.num_classes)
        out[:, self.k] = 1
        return out + self.dummy


def test_confusion_matrix_and_per_class_accuracy():
    cm = confusion_matrix([0, 0, 1, 2, 2, 2], [0, 1, 1, 2, 2, 0], num_classes=4)
    assert cm.tolist() == [[1, 1, 0, 0], [0, 1, 0, 0], [1, 0, 2, 0], [0, 0, 0, 0]]
    acc = per_class_accuracy(cm)
    assert acc[:3].tolist() == [0.5, 1.0, 2 / 3] and np.isnan(acc[3])


def test_predict_loader_collects_everything(tiny_loaders):
    preds = predict_loader(Constant(3), tiny_loaders[1])
    assert len(preds.y_true) == 128 and (preds.y_pred == 3).all()
    assert np.allclose(preds.probs.sum(axis=1), 1)
    assert preds.accuracy == np.mean(preds.y_true == 3)


def test_show_images_labels_and_colours_mistakes(tiny_loaders):
    x, y = next(iter(tiny_loaders[1]))
    names = [f"c{i}" for i in range(10)]
    preds = y.clone()
    preds[0] = (y[0] + 1) % 10
    fig = show_images(x[:6], y[:6], names, predictions=preds[:6], ncols=3)
    titled = [ax for ax in fig.axes if ax.get_title()]
    assert len(titled) == 6
    assert titled[0].get_title() == f"{names[int(preds[0])]}\n({names[int(y[0])]})"
    assert mcolors.to_hex(titled[0].title.get_color()) == mcolors.to_hex("red")
    assert mcolors.to_hex(titled[1].title.get_color()) == mcolors.to_hex("green")
    # The grid shows un-normalised pixels in [0, 1].
    shown = titled[1].images[0].get_array()
    assert shown.min() >= 0 and shown.max() <= 1


def test_learning_curves_have_train_and_validation():
    h = History()
    for e in (1, 2):
        h.append(
            epoch=e,
            train_loss=1.0 / e,
            train_acc=0.5,
            val_loss=1.2 / e,
            val_acc=0.4,
            lr=0.1,
            seconds=1,
        )
    fig = plot_history(h, title="run")
    loss_ax, acc_ax = fig.axes
    assert [line.get_label() for line in loss_ax.lines] == ["train", "validation"]
    assert list(loss_ax.lines[1].get_ydata()) == [1.2, 0.6]


def test_confusion_and_per_class_plots():
    cm = np.array([[8, 2], [1, 9]])
    fig = plot_confusion_matrix(cm, ["cat", "dog"])
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.texts] == ["0.80", "0.20", "0.10", "0.90"]
    assert ax.get_xlabel() == "predicted" and ax.get_ylabel() == "true"
    counts = plot_confusion_matrix(cm, ["cat", "dog"], normalize=False)
    assert [t.get_text() for t in counts.axes[0].texts] == ["8", "2", "1", "9"]
    bars = plot_per_class_accuracy([0.9, 0.6], ["cat", "dog"])
    assert [t.get_text() for t in bars.axes[0].get_yticklabels()] == ["dog", "cat"]  # worst first


def test_show_misclassified_shows_only_mistakes(tiny_loaders):
    fig = show_misclassified(Constant(0), tiny_loaders[1], [str(i) for i in range(10)], limit=5)
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert len(titles) == 5 and all(t.startswith("0\n") and not t.endswith("(0)") for t in titles)
    model = SimpleCNN()
    assert show_misclassified(model, tiny_loaders[1], [str(i) for i in range(10)]).axes


def test_show_misclassified_takes_mistakes_from_every_class_of_a_sorted_test_set():
    """The real CIFAR-10 copy is stored class by class: the first 16 mistakes were all
    airplanes. Mistakes are now taken in turn from each true class."""
    from torch.utils.data import DataLoader, TensorDataset

    labels = torch.arange(10).repeat_interleave(20)  # sorted by class, as an ImageFolder is
    loader = DataLoader(TensorDataset(torch.rand(200, 3, 8, 8), labels), batch_size=50)
    fig = show_misclassified(Constant(0), loader, [str(i) for i in range(10)], limit=9,
                             mean=None, std=None)  # fmt: skip
    truths = {ax.get_title().split("(")[1].rstrip(")") for ax in fig.axes if ax.get_title()}
    assert truths == {str(c) for c in range(1, 10)}  # nine classes, one mistake each


@pytest.mark.parametrize("rows", [1, 8])
def test_explanations_colour_bar_sits_under_the_maps_without_an_empty_band(rows):
    """The colour bar's pad is a fraction of the maps' height: with matplotlib's default,
    eight rows left almost an inch of blank figure above it (seen on the course's site)."""
    from cnnlab.plots import plot_explanations

    x = torch.rand(rows, 3, 32, 32)
    maps = {name: torch.rand(rows, 32, 32) for name in ("saliency", "Grad-CAM")}
    fig = plot_explanations(x, maps, titles=["cat (dog)"] * rows, mean=None, std=None)
    fig.canvas.draw()
    images = [a for a in fig.axes if a.get_label() != "<colorbar>"]
    (bar,) = [a for a in fig.axes if a.get_label() == "<colorbar>"]
    gap = (min(a.get_tightbbox().y0 for a in images) - bar.get_tightbbox().y1) / fig.dpi
    assert 0 < gap < 0.2, f"{gap:.2f} inches between the maps and their colour bar"
    plt.close(fig)


def test_the_trade_off_curve_draws_each_recipe_in_minutes_with_its_final_point_as_a_star():
    from cnnlab.plots import plot_time_to_accuracy

    curves = {"airbench94": [(120, 0.62), (600, 0.89), (640, 0.904)],
              "fast": [(60, 0.71), (180, 0.855), (190, 0.865)]}  # fmt: skip
    fig = plot_time_to_accuracy(curves, levels=(0.85, 0.90))
    ax = fig.axes[0]
    assert ax.get_xlabel() == "training time (minutes)" and ax.get_xlim()[0] == 0
    stars = [line for line in ax.lines if line.get_marker() == "*" and len(line.get_xdata())]
    assert sorted(float(s.get_xdata()[0]) for s in stars) == [190 / 60, 640 / 60]
    low, high = ax.get_ylim()
    assert low <= 0.62 and high >= 0.904  # every point and both levels are on the plot
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == ["airbench94", "fast", "final, with TTA"]
    fig.canvas.draw()
    ticks = [t.get_text() for t in ax.get_yticklabels()]
    assert ticks and not any(t.startswith(("-", "−")) for t in ticks)

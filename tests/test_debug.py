"""cnnlab.debug: every checker gets a bad input of each kind and must name the cause; a
clean batch and a healthy model produce no warnings."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from cnnlab import seed_everything
from cnnlab.callbacks import TensorBoard
from cnnlab.data import make_loader
from cnnlab.debug import (
    NonFiniteError,
    ShapeTraceError,
    check_batch,
    find_nonfinite,
    layer_stats,
    lr_find,
    overfit_one_batch,
    trace_shapes,
)
from cnnlab.engine import evaluate, fit
from cnnlab.models import SimpleCNN


class SeedNet(nn.Module):
    """The seed tutorial's network, with its hard-coded flatten size."""

    def __init__(self):
        super().__init__()
        self.conv1, self.conv2 = nn.Conv2d(3, 32, 3, padding=1), nn.Conv2d(32, 64, 3, padding=1)
        self.conv3, self.pool = nn.Conv2d(64, 128, 3, padding=1), nn.MaxPool2d(2)
        self.fc1, self.fc2 = nn.Linear(128 * 4 * 4, 512), nn.Linear(512, 10)

    def forward(self, x):
        x = self.pool(torch.relu(self.conv1(x)))
        x = self.pool(torch.relu(self.conv2(x)))
        x = self.pool(torch.relu(self.conv3(x)))
        x = x.view(-1, 128 * 4 * 4)
        return self.fc2(torch.relu(self.fc1(x)))


# ---------------------------------------------------------------- trace_shapes


def test_trace_shapes_lists_every_layer_with_shapes_and_parameters():
    trace = trace_shapes(SeedNet(), (2, 3, 32, 32))
    assert [r.name for r in trace.rows] == ["conv1", "pool", "conv2", "pool", "conv3", "pool",
                                            "fc1", "fc2"]  # fmt: skip
    assert trace.rows[0].output_shape == (2, 32, 32, 32) and trace.rows[0].parameters == 896
    assert trace.rows[-1].output_shape == (2, 10) and not trace.warnings
    assert "fc1" in str(trace) and "(2, 512)" in str(trace)


def test_trace_shapes_flags_the_seed_view_at_224_pixels():
    trace = trace_shapes(SeedNet(), (1, 3, 224, 224))  # view(-1, 2048) silently folds
    assert trace.rows[-1].output_shape == (49, 10)
    assert "batch dimension changed from 1 to 49 before 'fc1'" in trace.warnings[0]
    assert "flatten(1)" in trace.warnings[0]


def test_trace_shapes_names_the_failing_layer_expected_and_actual():
    net = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 30 * 30, 10))
    with pytest.raises(ShapeTraceError) as info:
        trace_shapes(net, (1, 3, 64, 64))
    message = str(info.value)
    assert "layer '3'" in message and "expected input (N, 7200)" in message
    assert "got (1, 30752)" in message and "AdaptiveAvgPool2d" in message


def test_trace_shapes_recognises_channels_last():
    with pytest.raises(ShapeTraceError, match=r"layer 'conv1'.*permute\(0, 3, 1, 2\)"):
        trace_shapes(SeedNet(), (1, 32, 32, 3))


# ---------------------------------------------------------------- check_batch

GOOD_X = torch.randn(8, 3, 32, 32)
GOOD_Y = torch.arange(8) % 10


def test_a_clean_batch_has_no_problems():
    report = check_batch(GOOD_X, GOOD_Y, num_classes=10)
    assert report.ok and report.problems == [] and "no problems" in str(report)
    report.raise_if_bad()


@pytest.mark.parametrize(
    ("x", "y", "kind", "fix"),
    [
        (GOOD_X.numpy(), GOOD_Y, "NumPy array", "torch.from_numpy"),
        (GOOD_X[0], None, "no batch dimension", "unsqueeze(0)"),
        (GOOD_X.permute(0, 2, 3, 1), None, "channels-last (NHWC)", "permute(0, 3, 1, 2)"),
        (GOOD_X[:, :1], None, "channel count", "convert('RGB')"),
        (GOOD_X.double(), None, "float64 images", "x.float()"),
        ((GOOD_X.abs() * 40).to(torch.uint8), None, "integer images", "ToTensor"),
        (GOOD_X.clone().index_fill_(0, torch.tensor([2]), float("nan")), None,
         "NaN/Inf in images", "drop them"),
        (GOOD_X.abs() * 80, None, "0-255 pixel values", "divide by 255"),
        (torch.rand(8, 3, 32, 32), None, "not normalised", "Normalize"),
        (GOOD_X, GOOD_Y[:, None], "labels of shape (N, 1)", "squeeze(1)"),
        (GOOD_X, GOOD_Y.float(), "float labels", "y.long()"),
        (GOOD_X, GOOD_Y.int(), "label dtype", "y.long()"),
        (GOOD_X, GOOD_Y[:5], "label count", "x.view(-1"),
        (GOOD_X, GOOD_Y + 5, "labels out of range", "num_classes"),
        (GOOD_X, torch.full((8,), float("nan")), "NaN labels", "label source"),
    ],
)  # fmt: skip
def test_each_bad_batch_is_named_with_its_fix(x, y, kind, fix):
    report = check_batch(x, y, num_classes=10)
    problem = next((p for p in report.problems if p.kind == kind), None)
    assert problem is not None, f"expected {kind!r}, got {report.kinds}"
    assert fix in problem.fix
    if problem.severity == "error":
        with pytest.raises(ValueError, match="Fix:"):
            report.raise_if_bad()


def test_out_of_range_labels_explain_cpu_and_gpu_symptoms():
    [problem] = check_batch(GOOD_X, torch.tensor([0, 1, 2, 3, 4, 5, 6, 10]), 10).problems
    assert "IndexError" in problem.cause and "device-side assert" in problem.cause


def test_class_probabilities_are_valid_targets():
    probs = torch.softmax(torch.randn(8, 10), dim=1)
    assert check_batch(GOOD_X, probs, num_classes=10).ok
    assert check_batch(GOOD_X, probs[:, :4], num_classes=10).kinds == ["label width"]


# ---------------------------------------------------------------- overfit one batch


@pytest.fixture
def batch(standin_train):
    return next(iter(make_loader(standin_train, 32, shuffle=True, seed=0, num_workers=0)))


def test_a_healthy_model_overfits_one_batch_and_keeps_its_weights(batch):
    seed_everything(0)
    model = SimpleCNN()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    result = overfit_one_batch(model, batch, steps=60)
    assert result.success and result.final_loss < 0.05 and "OK" in result.message
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    assert result.plot().axes[0].get_yscale() == "log"


def test_a_model_that_cannot_learn_is_reported(batch):
    seed_everything(0)
    model = SimpleCNN()
    for p in model.parameters():  # nothing left to train but the last bias
        p.requires_grad_(False)
    model.classifier[4].bias.requires_grad_(True)
    result = overfit_one_batch(model, batch, steps=30)
    assert not result.success
    assert "PROBLEM" in result.message and "requires_grad" in result.message


# ---------------------------------------------------------------- layer statistics


def test_a_healthy_model_has_no_warnings(batch):
    seed_everything(0)
    stats = layer_stats(SimpleCNN(), batch)
    assert stats.warnings == []
    assert {r.name for r in stats.rows} >= {"features.0", "classifier.4"}
    assert all(r.grad_norm is None or r.grad_norm > 0 for r in stats.rows)


def test_dead_relu_vanishing_and_exploding_gradients_are_named():
    seed_everything(0)
    x, y = torch.randn(16, 4), torch.zeros(16, dtype=torch.long)
    dead = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    with torch.no_grad():
        dead[0].bias.fill_(-50.0)
    warnings = layer_stats(dead, (x, y)).warnings
    assert any(w.startswith("dead ReLU '1'") for w in warnings)

    deep = nn.Sequential(*[m for _ in range(25) for m in (nn.Linear(4, 4), nn.Sigmoid())],
                         nn.Linear(4, 2))  # fmt: skip
    assert any(
        w.startswith("vanishing gradient in '0'") for w in layer_stats(deep, (x, y)).warnings
    )

    exploding = nn.Sequential(*[nn.Linear(4, 4) for _ in range(6)], nn.Linear(4, 2))
    with torch.no_grad():
        for layer in exploding:
            layer.weight.mul_(20)
    warnings = layer_stats(exploding, (x, y)).warnings
    assert any(w.startswith("exploding gradient") and "grad_clip" in w for w in warnings)


def test_find_nonfinite_names_the_first_bad_layer_and_bad_inputs():
    seed_everything(0)
    net = nn.Sequential(nn.Linear(3, 3), nn.ReLU(), nn.Linear(3, 2))
    find_nonfinite(net, (torch.randn(4, 3), torch.zeros(4, dtype=torch.long)))  # all finite
    with torch.no_grad():
        net[2].weight[0, 0] = float("inf")
    with pytest.raises(NonFiniteError, match=r"layer '2' \(Linear\)"):
        find_nonfinite(net, torch.ones(4, 3))
    with pytest.raises(NonFiniteError, match="input batch itself"):
        find_nonfinite(nn.Sequential(nn.Flatten()), torch.full((1, 2), float("nan")))


# ---------------------------------------------------------------- LR finder


def test_lr_finder_suggests_a_rate_that_trains_well(standin_train, standin_test):
    """Adam at 1e-3 trains SimpleCNN well on the stand-in (see test_engine); the suggestion
    must be within an order of magnitude of it, and must itself train well."""
    seed_everything(0)
    loader = make_loader(standin_train, 64, shuffle=True, seed=0, num_workers=0)
    model = SimpleCNN()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    result = lr_find(model, loader, steps=80)
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    assert 1e-4 <= result.suggestion <= 1e-2, f"suggested {result.suggestion:.1e}"
    fit(model, loader, epochs=1, optimizer=torch.optim.Adam(model.parameters(), result.suggestion),
        device="cpu", progress=False)  # fmt: skip
    accuracy = evaluate(model, make_loader(standin_test, 250, num_workers=0)).accuracy
    assert accuracy > 0.4, f"the suggested LR {result.suggestion:.1e} reached {accuracy:.1%}"
    assert result.plot().axes[0].get_xscale() == "log"


# ---------------------------------------------------------------- TensorBoard


def test_tensorboard_callback_writes_scalars_histograms_images_and_graph(tmp_path, tiny_loaders):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    train, test = tiny_loaders
    seed_everything(0)
    model = SimpleCNN()
    board = TensorBoard(tmp_path / "run", next(iter(train)), log_every_n_steps=2)
    fit(model, train, test, epochs=2, callbacks=[board], device="cpu", progress=False)
    events = EventAccumulator(str(tmp_path / "run"), size_guidance={"histograms": 0}).Reload()
    tags = events.Tags()
    assert {"loss/train", "loss/val", "accuracy/val", "learning_rate"} <= set(tags["scalars"])
    assert [e.step for e in events.Scalars("loss/train")] == [1, 2]
    # per step too: 4 batches an epoch, every second step logged
    assert [e.step for e in events.Scalars("loss/train_step")] == [2, 4, 6, 8]
    assert "weights/features.0.weight" in tags["histograms"]
    assert "samples" in tags["images"] and tags["graph"]


def test_check_batch_accepts_numpy_labels():
    assert check_batch(GOOD_X, np.arange(8) % 10, num_classes=10).kinds == []


def test_tensorboard_shows_photos_in_their_own_colours(tmp_path, monkeypatch):
    """Photos normalised with ImageNet's statistics are un-normalised with them (read from
    the loader's transform), not with CIFAR-10's: a red photo stays that red."""
    from PIL import Image
    from torchvision import transforms as T

    from cnnlab.data import IMAGENET_MEAN, IMAGENET_STD

    class Photos(torch.utils.data.Dataset):
        transform = T.Compose([T.ToTensor(), T.Normalize(IMAGENET_MEAN, IMAGENET_STD)])

        def __len__(self):
            return 4

        def __getitem__(self, i):
            return self.transform(Image.new("RGB", (32, 32), (200, 40, 40))), 0

    loader = torch.utils.data.DataLoader(Photos(), batch_size=4)
    shown = []
    monkeypatch.setattr("torch.utils.tensorboard.SummaryWriter.add_images",
                        lambda self, tag, images, *a, **k: shown.append(images))  # fmt: skip
    board = TensorBoard(tmp_path / "run", next(iter(loader)), histograms=False)
    fit(SimpleCNN(), loader, epochs=1, callbacks=[board], device="cpu", progress=False)
    pixel = shown[0][0, :, 0, 0]
    assert torch.allclose(pixel, torch.tensor([200, 40, 40]) / 255, atol=1e-3), pixel

"""Freezing really freezes, discriminative LRs land where intended, gradual unfreezing
unfreezes the right group at the right epoch."""

from __future__ import annotations

import pytest
import torch
import torchvision
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from cnnlab import seed_everything
from cnnlab.callbacks import GradualUnfreezing, LambdaCallback
from cnnlab.engine import fit, train_one_epoch
from cnnlab.freezing import (
    discriminative_param_groups,
    freeze,
    freeze_to,
    group_table,
    keep_frozen_batchnorm_in_eval,
    layer_groups,
    unfreeze,
)
from cnnlab.models import SmallResNet


def _loader(n=32, size=32, classes=10, batch=16):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 3, size, size, generator=g)
    y = torch.randint(0, classes, (n,), generator=g)
    return DataLoader(TensorDataset(x, y), batch_size=batch)


def _snapshot(model):
    params = {n: p.detach().clone() for n, p in model.named_parameters()}
    buffers = {n: b.detach().clone() for n, b in model.named_buffers()}
    return params, buffers


def _group_of(model):
    """parameter name -> layer group name"""
    ids = {id(p): name for name, mods in layer_groups(model).items()
           for m in mods for p in m.parameters()}  # fmt: skip
    return {n: ids[id(p)] for n, p in model.named_parameters()}


@pytest.mark.parametrize(
    "build", [lambda: SmallResNet(width=8), lambda: torchvision.models.resnet18(num_classes=10)]
)
def test_frozen_parameters_and_batchnorm_statistics_do_not_move(build):
    seed_everything(0)
    model = build()
    freeze_to(model, -1)  # only the head trains
    params, buffers = _snapshot(model)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-2)
    train_one_epoch(model, _loader(), nn.CrossEntropyLoss(), optimizer, torch.device("cpu"),
                    progress=False)  # fmt: skip
    group = _group_of(model)
    for name, p in model.named_parameters():
        if group[name] == "head":
            assert not torch.equal(p, params[name]), f"{name} should have trained"
        else:
            assert torch.equal(p, params[name]), f"frozen {name} changed"
    for name, b in model.named_buffers():
        if "running" in name and not name.startswith(("fc", "head")):
            assert torch.equal(b, buffers[name]), f"frozen BatchNorm statistic {name} moved"


def test_unfrozen_batchnorm_statistics_do_move():
    model = SmallResNet(width=8)
    _, buffers = _snapshot(model)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    train_one_epoch(model, _loader(), nn.CrossEntropyLoss(), optimizer, torch.device("cpu"),
                    progress=False)  # fmt: skip
    assert not torch.equal(model.stem[1].running_mean, buffers["stem.1.running_mean"])


def test_frozen_batchnorm_goes_to_eval_mode_but_unfrozen_and_non_affine_do_not():
    model = nn.Sequential(nn.BatchNorm2d(3), nn.BatchNorm2d(3), nn.BatchNorm2d(3, affine=False))
    freeze(model[0])
    model.train()
    assert keep_frozen_batchnorm_in_eval(model) == 1
    assert [m.training for m in model] == [False, True, True]


@pytest.mark.parametrize(
    ("arch", "names"),
    [
        ("resnet18", ["stem", "layer1", "layer2", "layer3", "layer4", "head"]),
        ("resnet50", ["stem", "layer1", "layer2", "layer3", "layer4", "head"]),
        ("mobilenet_v3_small", ["stem", "blocks1", "blocks2", "blocks3", "blocks4", "head"]),
        ("efficientnet_b0", ["stem", "blocks1", "blocks2", "blocks3", "blocks4", "head"]),
        ("vgg16", ["conv1", "conv2", "conv3", "conv4", "conv5", "head"]),
        ("densenet121", ["stem", "dense1", "dense2", "dense3", "dense4", "head"]),
    ],
)
def test_layer_groups_cover_every_parameter_once(arch, names):
    with torch.device("meta"):  # structure only: no memory, no time
        model = torchvision.models.get_model(arch)
    groups = layer_groups(model)
    assert list(groups) == names
    seen = [id(p) for mods in groups.values() for m in mods for p in m.parameters()]
    assert len(seen) == len(set(seen)) == len(list(model.parameters()))


def test_freeze_to_and_group_table():
    model = SmallResNet(width=8)
    freeze_to(model, 2)
    table = group_table(model)
    assert [r.trainable == 0 for r in table.rows] == [True, True, False, False, False]
    assert table.total == sum(p.numel() for p in model.parameters())
    assert "frozen" in str(table) and "trained" in str(table)
    freeze_to(model, 0)
    assert group_table(model).trainable == table.total
    with pytest.raises(ValueError, match="out of range"):
        freeze_to(model, 9)


def test_layer_groups_names_the_way_out_for_unknown_models():
    with pytest.raises(TypeError, match=r"freeze\(model.part\)"):
        layer_groups(nn.Sequential(nn.Linear(2, 2)))


def test_discriminative_learning_rates_reach_the_optimizer():
    model = torchvision.models.resnet18(num_classes=4)
    groups = discriminative_param_groups(model, (1e-5, 1e-3))
    optimizer = torch.optim.AdamW(groups, lr=1e-3)
    lrs = {g["name"]: g["lr"] for g in optimizer.param_groups}
    assert list(lrs) == ["stem", "layer1", "layer2", "layer3", "layer4", "head"]
    assert lrs["stem"] == pytest.approx(1e-5) and lrs["head"] == pytest.approx(1e-3)
    assert lrs["layer2"] == pytest.approx(1e-5 * 100**0.4)
    values = list(lrs.values())
    assert values == sorted(values)  # early layers change least
    group = _group_of(model)
    for g in optimizer.param_groups:  # every parameter sits in its own group's LR
        names = {n for n, p in model.named_parameters() if any(p is q for q in g["params"])}
        assert {group[n] for n in names} == {g["name"]}
    with pytest.raises(ValueError, match="one per group"):
        discriminative_param_groups(model, [1e-3, 1e-4, 1e-5])


def test_gradual_unfreezing_unfreezes_the_right_group_at_the_right_epoch():
    seed_everything(0)
    model = SmallResNet(width=8)
    schedule = GradualUnfreezing(model, every=2)
    trained_at = []  # runs after the schedule at the start of each epoch
    snapshots = []

    def record(state):
        trained_at.append(schedule.trainable_groups())
        snapshots.append(_snapshot(model)[0])

    optimizer = torch.optim.SGD(discriminative_param_groups(model, 0.05), lr=0.05)
    fit(model, _loader(), epochs=5, optimizer=optimizer,
        callbacks=[schedule, LambdaCallback(on_epoch_start=record)],
        device="cpu", progress=False)  # fmt: skip
    assert trained_at == [
        ["head"],
        ["head"],
        ["layer3", "head"],
        ["layer3", "head"],
        ["layer2", "layer3", "head"],
    ]
    group = _group_of(model)
    # layer3 is frozen in epochs 1-2 and trains from epoch 3: compare the weights
    # at the start of epochs 1, 3 and 5.
    name = next(n for n in group if group[n] == "layer3")
    assert torch.equal(snapshots[0][name], snapshots[2][name])
    assert not torch.equal(snapshots[2][name], snapshots[4][name])
    stem = next(n for n in group if group[n] == "stem")
    assert torch.equal(snapshots[0][stem], dict(model.named_parameters())[stem])


def test_unfreeze_restores_training():
    layer = nn.Linear(2, 2)
    freeze(layer)
    unfreeze(layer)
    assert all(p.requires_grad for p in layer.parameters())

import sys

import numpy as np
import pytest
import torch
from PIL import Image

from cnnlab.data import (
    CIFAR10_MEAN,
    DecodedImages,
    StandInCIFAR10,
    cifar10_eval_transform,
    cifar10_train_transform,
    decode_images,
    default_num_workers,
    denormalize,
    make_loader,
    split_indices,
    subset,
    train_val_split,
)


@pytest.fixture
def picture():
    return Image.fromarray(StandInCIFAR10(size=1).data[0])


def test_eval_transform_is_deterministic_and_normalised(picture):
    t = cifar10_eval_transform()
    a, b = t(picture), t(picture)
    assert a.shape == (3, 32, 32) and torch.equal(a, b)
    back = denormalize(a)
    assert torch.allclose(
        back, torch.as_tensor(np.array(picture)).permute(2, 0, 1) / 255, atol=1e-5
    )


def test_train_transform_augments(picture):
    torch.manual_seed(0)
    t = cifar10_train_transform()
    outs = [t(picture) for _ in range(8)]
    assert all(o.shape == (3, 32, 32) for o in outs)
    assert any(not torch.equal(outs[0], o) for o in outs[1:])


def test_denormalize_the_mean_gives_the_mean_colour():
    assert torch.allclose(
        denormalize(torch.zeros(2, 3, 4, 4))[0, :, 0, 0], torch.tensor(CIFAR10_MEAN)
    )


def test_split_is_disjoint_complete_and_seeded():
    tr, va = split_indices(100, 0.2, seed=1)
    assert len(va) == 20 and sorted(tr + va) == list(range(100))
    assert split_indices(100, 0.2, seed=1) == (tr, va)
    assert split_indices(100, 0.2, seed=2) != (tr, va)


@pytest.mark.parametrize("fraction", [0, 1, 1.5])
def test_split_refuses_bad_fractions(fraction):
    with pytest.raises(ValueError, match="val_fraction must be between 0 and 1"):
        split_indices(10, fraction)


def test_validation_subset_comes_from_the_eval_copy():
    augmented = StandInCIFAR10(size=40, transform=cifar10_train_transform())
    plain = StandInCIFAR10(size=40, transform=cifar10_eval_transform())
    train, val = train_val_split(augmented, 0.25, seed=0, val_dataset=plain)
    assert len(train) == 30 and len(val) == 10
    assert val.dataset is plain and train.dataset is augmented
    assert not set(train.indices) & set(val.indices)
    with pytest.raises(ValueError, match="same data with different transforms"):
        train_val_split(augmented, val_dataset=StandInCIFAR10(size=5))


def test_subset_takes_n_items():
    ds = StandInCIFAR10(size=50)
    assert len(subset(ds, 10)) == 10 and subset(ds, None) is ds and subset(ds, 500) is ds


def test_subset_of_decoded_images_keeps_the_same_items_as_a_data_set():
    ds = StandInCIFAR10(size=50)
    decoded = decode_images(ds)
    small = subset(decoded, 10, seed=3)
    assert isinstance(small, DecodedImages) and small.classes == decoded.classes
    chosen = subset(ds, 10, seed=3).indices  # the same rows, in the same order
    assert torch.equal(small.images, decoded.images[chosen])
    assert torch.equal(small.labels, decoded.labels[chosen])
    assert subset(decoded, None) is decoded


def test_loader_order_repeats_with_a_seed():
    ds = StandInCIFAR10(size=64, transform=cifar10_eval_transform())

    def labels(seed):
        return torch.cat(
            [y for _, y in make_loader(ds, 16, shuffle=True, seed=seed, num_workers=0)]
        )

    assert torch.equal(labels(0), labels(0)) and not torch.equal(labels(0), labels(1))


def test_loader_with_workers_yields_every_item():
    ds = StandInCIFAR10(size=40, transform=cifar10_eval_transform())
    loader = make_loader(ds, 8, num_workers=1)
    assert torch.cat([y for _, y in loader]).tolist() == ds.targets


def test_no_workers_in_notebooks_on_spawn_platforms(monkeypatch):
    monkeypatch.setitem(sys.modules, "ipykernel", sys)
    for platform in ("win32", "darwin"):
        monkeypatch.setattr(sys, "platform", platform)
        assert default_num_workers() == 0
    monkeypatch.setattr(sys, "platform", "linux")
    monkeypatch.setattr("os.cpu_count", lambda: 16)
    assert default_num_workers() == 4


def test_class_subset_keeps_relabels_and_caps_classes():
    from cnnlab.data import StandInCIFAR10, class_subset

    ds = StandInCIFAR10(size=300)
    picked = class_subset(ds, ["ring", "disk", "dots"], per_class=7, seed=1)
    assert len(picked) == 21 and picked.classes == ["ring", "disk", "dots"]
    for i in range(len(picked)):
        _, label = picked[i]
        assert ds.classes[ds.targets[picked.indices[i]]] == picked.classes[label]
        assert picked.targets[i] == label
    assert len(class_subset(ds, ["ring"])) == sum(ds.classes[t] == "ring" for t in ds.targets)
    with pytest.raises(ValueError, match="not in this data set"):
        class_subset(ds, ["unicorn"])


def test_in_memory_tensors_get_no_worker_processes():
    from torch.utils.data import TensorDataset

    from cnnlab.data import make_loader

    data = TensorDataset(torch.zeros(4, 2), torch.zeros(4))
    assert make_loader(data).num_workers == 0
    assert make_loader(data, num_workers=1).num_workers == 1

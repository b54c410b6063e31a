import numpy as np
import pytest
import torch
from PIL import Image

from cnnlab.data import STANDIN_CLASSES, StandInCIFAR10, cifar10_eval_transform, generate_standin


def test_same_seed_same_data_other_seed_other_data():
    a, la = generate_standin(200, seed=3)
    b, lb = generate_standin(200, seed=3)
    c, _ = generate_standin(200, seed=4)
    assert np.array_equal(a, b) and np.array_equal(la, lb)
    assert not np.array_equal(a, c)


def test_a_split_is_generated_once_per_process_and_each_caller_gets_its_own_copy():
    from cnnlab.data import standin

    standin._generated.cache_clear()
    a, labels = generate_standin(300, seed=5)
    a[:] = 0  # a caller that writes into its arrays...
    labels[:] = 0
    b, labels_b = generate_standin(300, seed=5)
    assert standin._generated.cache_info().hits == 1  # ...then asks again: no second drawing
    assert b.any() and labels_b.any()  # ...changed nobody else's copy


def test_a_smoke_run_generates_smaller_default_splits(clean_env):
    assert (len(StandInCIFAR10(train=True)), len(StandInCIFAR10(train=False))) == (10_000, 2_000)
    clean_env.setenv("CNNLAB_FAST", "1")
    assert (len(StandInCIFAR10(train=True)), len(StandInCIFAR10(train=False))) == (4_096, 1_024)


def test_images_are_32px_rgb_uint8_and_classes_balanced():
    images, labels = generate_standin(1000, seed=0)
    assert images.shape == (1000, 32, 32, 3) and images.dtype == np.uint8
    assert np.bincount(labels, minlength=10).tolist() == [100] * 10
    # Pictures, not flat colour: every image has real contrast.
    spread = images.reshape(1000, -1).std(axis=1)
    assert spread.min() > 10


def test_colour_alone_does_not_tell_the_class():
    images, labels = generate_standin(2000, seed=1)
    mean_colour = np.stack([images[labels == k].mean(axis=(0, 1, 2)) for k in range(10)])
    # Every class's average colour is close to mid-grey: the network must look at shape.
    assert np.abs(mean_colour - mean_colour.mean(axis=0)).max() < 25


def test_interface_matches_torchvision_cifar10():
    ds = StandInCIFAR10(train=True, size=30)
    assert ds.classes == list(STANDIN_CLASSES) and len(ds.classes) == 10
    assert ds.class_to_idx["disk"] == 0
    assert ds.data.shape == (30, 32, 32, 3) and len(ds.targets) == 30
    image, label = ds[5]
    assert isinstance(image, Image.Image) and image.size == (32, 32) and image.mode == "RGB"
    assert isinstance(label, int) and label == ds.targets[5]
    assert np.array_equal(np.asarray(image), ds.data[5])


def test_transforms_are_applied():
    ds = StandInCIFAR10(
        train=False, size=10, transform=cifar10_eval_transform(), target_transform=lambda t: t + 100
    )
    x, y = ds[0]
    assert isinstance(x, torch.Tensor) and x.shape == (3, 32, 32) and x.dtype == torch.float32
    assert y >= 100


def test_train_and_test_splits_differ():
    train, test = StandInCIFAR10(train=True, size=50), StandInCIFAR10(train=False, size=50)
    assert not np.array_equal(train.data, test.data)


def test_negative_size_is_refused():
    with pytest.raises(ValueError, match="n must be >= 0"):
        generate_standin(-1)

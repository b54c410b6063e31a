"""The tensor-resident loader: every image once per epoch, augmentation that matches a
per-image reference, the same training as a DataLoader, and its on-disk cache."""

import numpy as np
import pytest
import torch
import torchvision.transforms.functional as TF
from PIL import Image
from torch.utils.data import TensorDataset

from cnnlab import seed_everything
from cnnlab.data import (
    DecodedImages,
    StandInCIFAR10,
    TensorLoader,
    cifar10_eval_transform,
    decode_images,
    load_image_folder,
    make_loader,
    random_crop_flip,
)
from cnnlab.engine import evaluate, fit
from cnnlab.models import SimpleCNN


def numbered(n: int = 70) -> DecodedImages:
    """Random images whose label is their index, so each one can be recognised."""
    images = torch.randint(0, 256, (n, 3, 32, 32), generator=torch.Generator().manual_seed(1),
                           dtype=torch.uint8)  # fmt: skip
    return DecodedImages(images, torch.arange(n), [str(i) for i in range(n)])


@pytest.mark.parametrize("augment", [False, True])
def test_every_image_exactly_once_per_epoch(augment):
    loader = TensorLoader(numbered(70), batch_size=16, shuffle=True, augment=augment, seed=0)
    orders = []
    for _ in range(3):
        batches = list(loader)
        assert len(batches) == len(loader) == 5  # 4 full batches and one of 6
        seen = torch.cat([labels for _, labels in batches])
        assert sorted(seen.tolist()) == list(range(70))
        orders.append(seen.tolist())
    assert orders[0] != orders[1] != orders[2]  # a new order every epoch


def test_drop_last_and_no_shuffle():
    loader = TensorLoader(numbered(70), batch_size=16, drop_last=True)
    seen = torch.cat([labels for _, labels in loader])
    assert len(loader) == 4 and seen.tolist() == list(range(64))


def test_batches_are_the_images_normalised_like_totensor_and_normalize():
    data = numbered(20)
    images, labels = next(iter(TensorLoader(data, batch_size=20, shuffle=True, seed=3)))
    reference = torch.stack([
        cifar10_eval_transform()(Image.fromarray(data.images[i].permute(1, 2, 0).numpy()))
        for i in labels
    ])  # fmt: skip
    assert torch.equal(images, reference)  # bit for bit, not just close


def reference_crop_flip(images, padding, generator):
    """The same draws, applied one image at a time with torchvision's functional ops."""
    n = len(images)
    dy = torch.randint(0, 2 * padding + 1, (n,), generator=generator)
    dx = torch.randint(0, 2 * padding + 1, (n,), generator=generator)
    flips = torch.rand(n, generator=generator) < 0.5
    out = []
    for image, top, left, flip in zip(
        images, dy.tolist(), dx.tolist(), flips.tolist(), strict=True
    ):
        padded = TF.pad(image.float(), [padding] * 4, padding_mode="reflect")
        crop = TF.crop(padded, top, left, image.shape[1], image.shape[2])
        out.append(TF.hflip(crop) if flip else crop)
    return torch.stack(out).to(images.dtype)


@pytest.mark.parametrize("padding", [0, 2, 4])
def test_crop_and_flip_match_a_per_image_reference(padding):
    images = numbered(64).images
    ours = random_crop_flip(images, padding, generator=torch.Generator().manual_seed(7))
    theirs = reference_crop_flip(images, padding, torch.Generator().manual_seed(7))
    assert torch.equal(ours, theirs)
    if padding:
        assert not torch.equal(ours, images)  # something did move


def test_crop_flip_draws_really_vary():
    images = numbered(256).images[:, :, :8, :8]
    out = random_crop_flip(images, 2, generator=torch.Generator().manual_seed(0))
    flipped = sum(torch.equal(o, i.flip(-1)) for o, i in zip(out, images, strict=True))
    untouched = sum(torch.equal(o, i) for o, i in zip(out, images, strict=True))
    # P(no shift) = 1/25, then half flipped: about 5 of 256 each; never all or none
    assert 0 < flipped < 30 and 0 < untouched < 30


def test_same_order_as_a_seeded_dataloader():
    loader = TensorLoader(numbered(50), batch_size=8, shuffle=True, seed=5)
    reference = make_loader(TensorDataset(torch.arange(50)), batch_size=8, shuffle=True, seed=5)
    for _ in range(2):
        ours = torch.cat([labels for _, labels in loader])
        theirs = torch.cat([idx for (idx,) in reference])
        assert torch.equal(ours, theirs)


def test_fit_gives_the_same_history_with_either_loader():
    standin = StandInCIFAR10(size=256, transform=cifar10_eval_transform())
    val_set = StandInCIFAR10(size=64, train=False, transform=cifar10_eval_transform())
    histories = []
    for kind in ("DataLoader", "TensorLoader"):
        if kind == "DataLoader":
            train = make_loader(standin, batch_size=32, shuffle=True, seed=0, num_workers=0)
            val = make_loader(val_set, batch_size=64, num_workers=0)
        else:
            train = TensorLoader.from_dataset(standin, batch_size=32, shuffle=True, seed=0)
            val = TensorLoader.from_dataset(val_set, batch_size=64)
        seed_everything(0)
        model = SimpleCNN()
        histories.append(fit(model, train, val, epochs=2, device="cpu", progress=False))
    a, b = histories
    assert a.train_loss == b.train_loss and a.train_acc == b.train_acc
    assert a.val_loss == b.val_loss and a.val_acc == b.val_acc


def test_channels_last_batches_and_tta_evaluation():
    loader = TensorLoader(numbered(32), batch_size=16, channels_last=True)
    images, _ = next(iter(loader))
    assert images.is_contiguous(memory_format=torch.channels_last)
    seed_everything(0)
    model = SimpleCNN(num_classes=32).eval()
    plain = evaluate(model, loader, device="cpu")
    tta = evaluate(model, loader, device="cpu", tta_flip=True)
    assert plain.samples == tta.samples == 32 and plain.loss != tta.loss


def test_decodes_torchvision_style_arrays_without_a_loop():
    standin = StandInCIFAR10(size=12)
    data = decode_images(standin)
    assert data.images.shape == (12, 3, 32, 32) and data.labels.tolist() == standin.targets
    assert torch.equal(data.images[3].permute(1, 2, 0), torch.from_numpy(standin.data[3]))


def make_folder(root, per_class=3, size=(32, 32)):
    rng = np.random.default_rng(0)
    for name in ("cat", "dog"):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            pixels = rng.integers(0, 255, (*size, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / name / f"{i}.png")
    return root


def test_image_folder_is_decoded_once_then_read_from_the_cache(tmp_path, monkeypatch):
    folder = load_image_folder(make_folder(tmp_path / "pets"))
    first = decode_images(folder)
    cached = list((tmp_path / ".cnnlab-cache").glob("pets-*.pt"))
    assert len(cached) == 1 and first.classes == ["cat", "dog"]
    assert torch.equal(first.images[0].permute(1, 2, 0),
                       torch.from_numpy(np.array(Image.open(folder.samples[0][0]))))  # fmt: skip

    import cnnlab.data.decoding as module

    def no_decoding(*_args):
        raise AssertionError("decoded again although the cache is there")

    monkeypatch.setattr(module, "_decode_items", no_decoding)
    second = decode_images(folder)
    assert torch.equal(first.images, second.images) and torch.equal(first.labels, second.labels)
    monkeypatch.undo()
    make_folder(tmp_path / "pets", per_class=4)  # a new image: a new fingerprint
    third = decode_images(load_image_folder(tmp_path / "pets"))
    assert len(third) == 8 and len(list((tmp_path / ".cnnlab-cache").glob("*.pt"))) == 2


def test_images_of_different_sizes_are_refused_with_the_way_out(tmp_path):
    make_folder(tmp_path / "mixed" / "a", per_class=1)
    make_folder(tmp_path / "mixed" / "b", per_class=1, size=(40, 40))
    folder = load_image_folder(tmp_path / "mixed" / "a")
    folder.samples += load_image_folder(tmp_path / "mixed" / "b").samples
    with pytest.raises(ValueError, match="Resize the images first, or use make_loader"):
        decode_images(folder, cache=False)


def test_float_images_are_refused():
    data = DecodedImages(torch.zeros(4, 3, 8, 8), torch.zeros(4, dtype=torch.long), ["a"])
    with pytest.raises(ValueError, match="expected uint8 images.*decode_images"):
        TensorLoader(data)


@pytest.mark.parametrize("local_rank", [0, 1])
def test_under_torchrun_one_process_per_machine_decodes_while_the_others_wait(
    tmp_path, monkeypatch, local_rank
):
    """Local rank 0 decodes and writes the cache, then releases the others at a barrier;
    the others wait at that barrier first, then read the cache rather than decode."""
    import cnnlab.data.decoding as module
    from cnnlab import distributed

    folder = load_image_folder(make_folder(tmp_path / "pets"))
    if local_rank:
        decode_images(folder)  # (what local rank 0 wrote while this process waited)
    events = []
    monkeypatch.setattr(distributed, "is_distributed", lambda: True)
    monkeypatch.setattr(distributed, "local_rank", lambda: local_rank)
    monkeypatch.setattr(distributed.dist, "barrier", lambda: events.append("barrier"))
    real = module._decode_items
    monkeypatch.setattr(module, "_decode_items",
                        lambda *a: events.append("decode") or real(*a))  # fmt: skip
    decode_images(folder)
    assert events == (["decode", "barrier"] if local_rank == 0 else ["barrier"])

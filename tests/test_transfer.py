"""Transfer models: heads in the right place, the real `weights=` loading path (tested
offline with a stand-in checkpoint in a temporary TORCH_HOME), loud offline fallback,
top-k predictions and cached features."""

from __future__ import annotations

import urllib.error

import pytest
import torch
import torchvision
from torch import nn

from cnnlab.transfer import (
    ARCHITECTURES,
    WeightsUnavailableError,
    backbone_of,
    build_transfer_model,
    extract_features,
    imagenet_categories,
    make_head,
    top_k,
)


@pytest.mark.parametrize("arch", ARCHITECTURES)
@pytest.mark.parametrize("head", ["linear", "mlp"])
def test_every_architecture_gets_its_new_head(arch, head, clean_env):
    with torch.device("meta"):
        tm = build_transfer_model(arch, num_classes=7, weights=None, head=head)
    outputs = [m for m in tm.model.modules() if isinstance(m, nn.Linear)][-1]
    assert outputs.out_features == 7
    assert not any(isinstance(m, nn.Linear) and m.out_features == 1000
                   for m in tm.model.modules())  # fmt: skip
    assert tm.pretrained is False and tm.weights is None and tm.transforms is None


def test_the_new_head_runs_end_to_end(clean_env):
    tm = build_transfer_model("resnet18", num_classes=3, weights=None, head="mlp", hidden=32)
    assert tm.model(torch.zeros(2, 3, 64, 64)).shape == (2, 3)


@pytest.fixture
def torch_home(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))

    def no_download(url, *args, **kwargs):
        raise urllib.error.URLError(f"test: no network for {url}")

    monkeypatch.setattr(torch.hub, "download_url_to_file", no_download)
    return tmp_path


def test_real_weights_path_loads_the_cached_checkpoint(torch_home, clean_env):
    """torchvision's own `weights=` code reads the file from the cache (it checks the hash
    only when it downloads): a stand-in checkpoint with known values proves that path."""
    from torchvision.models import ResNet18_Weights

    weights = ResNet18_Weights.IMAGENET1K_V1
    reference = torchvision.models.resnet18()
    with torch.no_grad():
        reference.conv1.weight.fill_(0.125)
    target = torch_home / "hub" / "checkpoints" / weights.url.rsplit("/", 1)[-1]
    target.parent.mkdir(parents=True)
    torch.save(reference.state_dict(), target)

    tm = build_transfer_model("resnet18", num_classes=5, weights="DEFAULT")
    assert tm.pretrained and tm.weights is weights
    assert torch.equal(tm.model.conv1.weight, reference.conv1.weight)
    assert torch.equal(tm.model.layer4[1].bn2.running_var, reference.layer4[1].bn2.running_var)
    assert tm.model.fc.out_features == 5
    assert tm.transforms.crop_size == [224]  # preprocessing that matches the weights


def test_failed_download_names_the_ways_out(torch_home, clean_env):
    with pytest.raises(WeightsUnavailableError) as info:
        build_transfer_model("mobilenet_v3_small", num_classes=2, weights="DEFAULT")
    message = str(info.value)
    assert "CNNLAB_OFFLINE=1" in message and "weights=None" in message
    assert str(torch_home / "hub" / "checkpoints" / "mobilenet_v3_small-047dcff4.pth") in message


def test_offline_mode_uses_random_weights_and_says_so(torch_home, clean_env, capsys):
    clean_env.setenv("CNNLAB_OFFLINE", "1")
    tm = build_transfer_model("resnet18", num_classes=4, weights="IMAGENET1K_V1")
    out = capsys.readouterr().out
    assert "RANDOM weights" in out and "IMAGENET1K_V1" in out
    assert tm.pretrained is False and tm.transforms is not None
    assert not list(torch_home.rglob("*.pth"))


def test_unknown_architecture_lists_the_known_ones():
    with pytest.raises(ValueError, match="resnet18"):
        build_transfer_model("alexnet2", num_classes=2, weights=None)


def test_top_k_returns_the_most_probable_names_in_order():
    net = nn.Sequential(nn.Flatten(), nn.Linear(3, 4))
    with torch.no_grad():
        net[1].weight.zero_()
        net[1].bias.copy_(torch.tensor([0.0, 2.0, 1.0, -1.0]))
    result = top_k(net, torch.zeros(2, 3, 1, 1), ["a", "b", "c", "d"], k=3)
    assert [name for name, _ in result[0]] == ["b", "c", "a"]
    probs = [p for _, p in result[1]]
    assert probs == sorted(probs, reverse=True) and 0.5 < probs[0] < 1


def test_top_k_on_pil_images_uses_the_weights_preprocessing():
    from PIL import Image
    from torchvision.models import ResNet18_Weights

    weights = ResNet18_Weights.DEFAULT
    categories = imagenet_categories(weights)
    assert len(categories) == 1000 and categories[0] == "tench"
    model = torchvision.models.resnet18()
    result = top_k(model, [Image.new("L", (300, 200))], categories, k=5,
                   transform=weights.transforms())  # fmt: skip
    assert len(result) == 1 and len(result[0]) == 5
    with pytest.raises(ValueError, match="transform"):
        top_k(model, [Image.new("RGB", (8, 8))], categories)


def test_cached_features_match_the_backbone_and_train_a_head():
    torch.manual_seed(0)
    model = torchvision.models.resnet18(num_classes=2)
    body = backbone_of(model, "resnet18")
    assert isinstance(model.fc, nn.Linear)  # the original keeps its head
    x = torch.randn(6, 3, 32, 32)
    loader = [(x[:4], torch.tensor([0, 1, 0, 1])), (x[4:], torch.tensor([1, 0]))]
    feats = extract_features(body, loader, "cpu", progress=False)
    assert feats.tensors[0].shape == (6, 512)
    model.eval()
    with torch.no_grad():
        assert torch.allclose(model.fc(feats.tensors[0]), model(x), atol=1e-5)


def test_make_head_rejects_unknown_kinds():
    with pytest.raises(ValueError, match="'linear' or 'mlp'"):
        make_head(8, 2, "attention")


def test_num_classes_none_keeps_the_imagenet_head(clean_env):
    with torch.device("meta"):
        tm = build_transfer_model("efficientnet_b0", num_classes=None, weights=None)
    assert tm.model.classifier[1].out_features == 1000


def test_the_mlp_head_is_the_seed_tutorials():
    """128 wide with dropout 0.5: 66,954 parameters on ResNet-18's 512 features, 10 classes
    (notebook 03's exercise 1 calls it the seed tutorial's head)."""
    from cnnlab.models import count_parameters

    head = make_head(512, 10, "mlp")
    assert count_parameters(head).total == 66_954 and head[2].p == 0.5

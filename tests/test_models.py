import pytest
import torch
from torch import nn

from cnnlab.errors import InputShapeError
from cnnlab.models import ResidualBlock, SimpleCNN, SmallResNet, count_parameters, summary


@pytest.mark.parametrize("size", [32, 64, 224])
def test_simplecnn_takes_its_declared_input_size(size):
    model = SimpleCNN(num_classes=7, input_size=size)
    assert model(torch.zeros(2, 3, size, size)).shape == (2, 7)
    # The flatten size follows the input size: 128 maps of size/8 pixels a side.
    assert model.classifier[1].in_features == 128 * (size // 8) ** 2


@pytest.mark.parametrize(
    "shape, dtype, message",
    [
        (
            (4, 32, 32, 3),
            torch.float32,
            r"expects images of shape \(N, 3, 32, 32\), got \(4, 32, 32, 3\): it looks channels-last \(NHWC\); use x.permute\(0, 3, 1, 2\)",
        ),
        ((4, 1, 32, 32), torch.float32, r"1-channel \(grayscale\) images; convert them to RGB"),
        (
            (4, 3, 224, 224),
            torch.float32,
            r"SimpleCNN was built for 32x32 inputs; resize your images \(transforms.Resize\(\(32, 32\)\)\) or build the model for 224x224 inputs",
        ),
        (
            (3, 32, 32),
            torch.float32,
            r"single image without the batch dimension; use x.unsqueeze\(0\)",
        ),
        (
            (4, 3, 32, 32),
            torch.uint8,
            r"expects floating-point images, got dtype torch.uint8: use transforms.ToTensor\(\)",
        ),
        ((2, 3, 32, 32, 1), torch.float32, r"a batch has 4 dimensions"),
    ],
    ids=["nhwc", "grayscale", "224px", "unbatched", "uint8", "5d"],
)
def test_wrong_inputs_get_a_message_that_says_what_to_do(shape, dtype, message):
    with pytest.raises(InputShapeError, match=message):
        SimpleCNN()(torch.zeros(shape, dtype=dtype))


def test_input_size_must_survive_three_poolings():
    with pytest.raises(ValueError, match="multiple of 8"):
        SimpleCNN(input_size=30)


@pytest.mark.parametrize("width", [8, 16])
def test_small_resnet_shapes(width):
    model = SmallResNet(num_classes=10, width=width)
    assert model(torch.zeros(2, 3, 32, 32)).shape == (2, 10)
    with pytest.raises(InputShapeError, match="channels-last"):
        model(torch.zeros(2, 32, 32, 3))


def test_resnet9_width_64_is_the_classic_size():
    assert 6.4e6 < count_parameters(SmallResNet(width=64)).total < 6.7e6


def test_residual_block_adds_its_input():
    block = ResidualBlock(4)
    for p in block.parameters():
        nn.init.zeros_(p)  # F(x) == 0, so y == relu(x)
    x = torch.randn(1, 4, 5, 5)
    assert torch.allclose(block(x), torch.relu(x))


def test_count_parameters_sees_frozen_ones():
    model = SimpleCNN()
    for p in model.features.parameters():
        p.requires_grad_(False)
    counts = count_parameters(model)
    frozen = sum(p.numel() for p in model.features.parameters())
    assert counts.frozen == frozen and counts.trainable + frozen == counts.total


def test_summary_traces_every_layer():
    model = SimpleCNN()
    s = summary(model, (1, 3, 32, 32))
    names = [r.name for r in s.rows]
    assert names[0] == "features.0" and names[-1] == "classifier.4"
    shapes = {r.name: r.output_shape for r in s.rows}
    assert shapes["features.8"] == (1, 128, 4, 4) and shapes["classifier.0"] == (1, 2048)
    assert sum(r.params for r in s.rows) == s.params.total == count_parameters(model).total
    assert "total 1,147,466 parameters" in str(s)
    assert model.training  # summary restores the mode it found


def test_multiply_adds_are_counted_not_written():
    from cnnlab.models import FastNet, SmallResNet, count_macs

    assert round(count_macs(FastNet()) / 1e6, 1) == 19.9
    assert round(count_macs(SmallResNet(width=32)) / 1e6, 1) == 95.3
    big = count_macs(SmallResNet(width=32), (1, 3, 64, 64))
    assert big == pytest.approx(4 * count_macs(SmallResNet(width=32)), rel=0.01)  # 4x the pixels

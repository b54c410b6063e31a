import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from cnnlab.checks import check_labels
from cnnlab.engine import fit
from cnnlab.errors import LabelError
from cnnlab.models import SimpleCNN


@pytest.mark.parametrize(
    "labels, message",
    [
        (
            torch.tensor([0, 3, 10]),
            r"labels must be in \[0, 10\) for 10 classes, found 10: check the model's number of outputs",
        ),
        (torch.tensor([-1, 3]), r"found -1"),
        (
            torch.tensor([0.0, 1.0]),
            r"labels have dtype torch.float32; CrossEntropyLoss expects class indices of dtype torch.long: convert them with y.long\(\)",
        ),
        (
            torch.eye(10)[:2].long(),
            r"1-D tensor of class indices, got shape \(2, 10\): one-hot labels .* y.argmax\(dim=1\)",
        ),
    ],
    ids=["too-high", "negative", "float", "one-hot"],
)
def test_bad_labels_are_named(labels, message):
    with pytest.raises(LabelError, match=message):
        check_labels(labels, num_classes=10)


def test_good_labels_become_long():
    out = check_labels(torch.tensor([0, 9], dtype=torch.int32), 10)
    assert out.dtype == torch.long and out.tolist() == [0, 9]


def test_fit_stops_out_of_range_labels_before_the_loss():
    x = torch.randn(8, 3, 32, 32)
    y = torch.tensor([0, 1, 2, 3, 4, 5, 6, 10])  # 10 does not exist in a 10-class model
    loader = DataLoader(TensorDataset(x, y), batch_size=8)
    with pytest.raises(LabelError, match=r"found 10"):
        fit(SimpleCNN(num_classes=10), loader, epochs=1, progress=False, device="cpu")

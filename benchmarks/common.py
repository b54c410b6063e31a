"""What every benchmark shares: where the real CIFAR-10 copy is, a line describing the
machine, printed above the figures so that they are never read without it, and the seed
tutorial's recipe that other pipelines are measured against."""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader
from torchvision import datasets
from torchvision import transforms as T

from cnnlab.data import prepare_cifar10_folder
from cnnlab.figures import cpu_name
from cnnlab.models import SimpleCNN

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "cifar10-jpg.tar.gz"


def add_data_argument(parser: argparse.ArgumentParser) -> None:
    """``--data``: a CIFAR-10 ImageFolder copy or a .tar.gz of one."""
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA,
                        help="CIFAR-10 ImageFolder copy or .tar.gz (default: %(default)s)")  # fmt: skip


def real_cifar10(data: Path) -> Path:
    """The folder of the real data set, unpacked if needed; the offline switch is
    removed, since figures measured on the stand-in would mean nothing."""
    os.environ.pop("CNNLAB_OFFLINE", None)
    return prepare_cifar10_folder(data)


def machine_line(device: str | torch.device = "cpu") -> str:
    """``# AMD EPYC (AVX2), 2 cores, torch 2.x, 2 threads, device cpu``"""
    return (f"# {cpu_name()}, {os.cpu_count()} cores, "
            f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {device}")  # fmt: skip


def seed_data(folder: Path) -> tuple[DataLoader, DataLoader]:
    """The tutorial's data pipeline: PIL transforms, batch 32, two workers."""
    norm = T.Normalize((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
    train_tf = T.Compose([T.RandomHorizontalFlip(), T.ToTensor(), norm])
    test_tf = T.Compose([T.ToTensor(), norm])
    train_set = datasets.ImageFolder(str(folder / "train"), transform=train_tf)
    test_set = datasets.ImageFolder(str(folder / "test"), transform=test_tf)
    return (
        DataLoader(train_set, batch_size=32, shuffle=True, num_workers=2),
        DataLoader(test_set, batch_size=32, shuffle=False, num_workers=2),
    )


def seed_recipe(folder: Path, epochs: int, device: torch.device) -> tuple[float, float]:
    """The tutorial's plain loop; returns (training images/s, test accuracy)."""
    train_loader, test_loader = seed_data(folder)
    train_set = train_loader.dataset

    model = SimpleCNN().to(device)
    criterion = nn.CrossEntropyLoss()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    seconds = 0.0
    for _ in range(epochs):
        model.train()
        start = time.perf_counter()
        for images, labels in train_loader:
            images, labels = images.to(device), labels.to(device)
            optimizer.zero_grad()
            loss = criterion(model(images), labels)
            loss.backward()
            optimizer.step()
        seconds += time.perf_counter() - start
    model.eval()
    correct = total = 0
    with torch.no_grad():
        for images, labels in test_loader:
            predicted = model(images.to(device)).argmax(1).cpu()
            correct += int((predicted == labels).sum())
            total += labels.numel()
    return epochs * len(train_set) / seconds, correct / total


def images_per_second(model: nn.Module, batch_size: int, size: int = 32, steps: int = 4,
                      channels_last: bool = False, bf16: bool = False) -> float:  # fmt: skip
    """Training steps on random tensors: compute only, no data loading (``bf16``: under
    bfloat16 autocast)."""
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x, y = torch.randn(batch_size, 3, size, size), torch.randint(0, 10, (batch_size,))
    if channels_last:
        model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    model.train()
    for step in range(steps + 1):
        if step == 1:  # the first step allocates and picks kernels
            start = time.perf_counter()
        with torch.autocast("cpu", torch.bfloat16, enabled=bf16):
            loss = nn.functional.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return steps * batch_size / (time.perf_counter() - start)

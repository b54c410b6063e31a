"""What every benchmark shares: where the real CIFAR-10 copy is, a line describing the
machine, printed above the figures so that they are never read without it, the seed
tutorial's recipe that other pipelines are measured against, and a relay in which
recipes take turns epoch by epoch, so that a drifting machine slows each of them alike."""

from __future__ import annotations

import argparse
import os
import threading
import time
from collections.abc import Callable, Sequence
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


class Relay:
    """Turns, epoch by epoch, for recipes that train in threads of one process: one computes
    at a time and hands over after each of its epochs, so that every recipe trains through
    the same spells of a machine whose speed drifts (seen here: 2-3x within minutes). Each
    recipe's clock stops while it waits (its epochs' times are measured before it hands over).

    Example:
        >>> relay = Relay(["a", "b"])  # "a" starts; relay.hand_over("a") after each epoch,
        >>> relay.leave("a")           # relay.leave("a") when it is done
        >>> relay.current
        'b'
    """

    def __init__(self, names: Sequence[str]) -> None:
        self.order, self.current = list(names), names[0]
        self.changed = threading.Condition()

    def wait_turn(self, name: str) -> None:
        with self.changed:
            self.changed.wait_for(lambda: self.current == name)

    def _pass_on(self, name: str, leaving: bool) -> None:
        at = self.order.index(name)
        if leaving:
            self.order.remove(name)
        if self.order:
            self.current = self.order[(at + (not leaving)) % len(self.order)]
        self.changed.notify_all()

    def hand_over(self, name: str) -> None:
        """After an epoch: the next recipe's turn, then back when this one's comes round."""
        with self.changed:
            self._pass_on(name, leaving=False)
        self.wait_turn(name)

    def leave(self, name: str) -> None:
        with self.changed:
            self._pass_on(name, leaving=True)


def run_relay(recipes: dict[str, Callable[[Callable[[], None]], dict]]) -> dict[str, dict]:
    """Run each ``recipes[name](after_epoch)`` in its own thread, taking turns epoch by epoch
    (:class:`Relay`) in the order given; their results, or the first error raised."""
    relay, runs, errors = Relay(list(recipes)), {}, []

    def train(name: str, recipe: Callable[[Callable[[], None]], dict]) -> None:
        relay.wait_turn(name)
        try:
            runs[name] = recipe(lambda: relay.hand_over(name))
        except BaseException as error:  # noqa: BLE001 - re-raised in the caller's thread
            print(f"{name} failed ({error!r}); the others go on, then it is raised", flush=True)
            errors.append(error)
        finally:
            relay.leave(name)

    # daemon threads: Ctrl-C in the main thread (waiting in join) ends the run, rather than
    # leaving the interpreter waiting for every recipe's remaining epochs
    threads = [
        threading.Thread(target=train, args=item, name=item[0], daemon=True)
        for item in recipes.items()
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return {name: runs[name] for name in recipes}

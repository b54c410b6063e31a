#!/usr/bin/env python3
"""Training fast on real CIFAR-10: the seed recipe vs cnnlab's data path, the fast recipe,
and how speed scales with batch size and image size.

Sections (all by default; pick with ``--only``):

``simplecnn``  The seed tutorial's recipe (ImageFolder + PIL transforms, flip only,
               ``Normalize(0.5, 0.5)``, batch 32, Adam 1e-3, two workers, plain loop) next
               to the same SimpleCNN, augmentation and normalisation through cnnlab's
               tensor-resident loader: once at batch 32 (the data path alone), once at
               batch 128 with Adam 2e-3 and a warm-up/decay schedule, and that again in
               channels_last memory order. Training images/s,
               test accuracy after the same epochs, and each speed as a ratio to the seed's.
``recipe``     ``cnnlab.recipes.cifar10_fast``: accuracy after every epoch and the wall
               time to 80 % and 85 %.
``scaling``    Training images/s against batch size (SimpleCNN, FastNet), and ResNet-18
               on 32-px inputs against the same images upsampled to 224 px.
``options``    SimpleCNN and FastNet at batch 256: plain, channels_last, ``torch.compile``
               (the compilation time is reported apart).

    python benchmarks/bench_training_fast.py                    # everything, ../shared/data
    python benchmarks/bench_training_fast.py --only recipe --recipe-epochs 5
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from common import add_data_argument, machine_line, real_cifar10, seed_recipe
from torch import nn
from torch.nn import functional as F
from torchvision import models

from cnnlab import seed_everything
from cnnlab.data import TensorLoader, decode_images, load_cifar10
from cnnlab.engine import evaluate, fit
from cnnlab.models import FastNet, SimpleCNN
from cnnlab.recipes import cifar10_fast
from cnnlab.schedules import warmup_linear_decay

HALF = (0.5, 0.5, 0.5)


def tensor_path(folder: Path, epochs: int, batch_size: int, lr: float, schedule: bool,
                channels_last: bool = False) -> tuple[float, float]:  # fmt: skip
    """The same SimpleCNN, flip and normalisation through ``TensorLoader`` and ``fit``."""
    train = decode_images(load_cifar10(train=True, folder=folder))
    test = decode_images(load_cifar10(train=False, folder=folder))
    train_loader = TensorLoader(train, batch_size, shuffle=True, augment=True, padding=0,
                                mean=HALF, std=HALF, seed=0, channels_last=channels_last)  # fmt: skip
    test_loader = TensorLoader(test, 1000, mean=HALF, std=HALF)
    model = SimpleCNN()
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    scheduler = (warmup_linear_decay(optimizer, epochs * len(train_loader), 0.1)
                 if schedule else None)  # fmt: skip
    history = fit(model, train_loader, epochs=epochs, optimizer=optimizer, scheduler=scheduler,
                  scheduler_interval="step", device="cpu", channels_last=channels_last,
                  progress=False)  # fmt: skip
    speed = epochs * len(train) / sum(history.seconds)
    return speed, evaluate(model, test_loader).accuracy


def section_simplecnn(folder: Path, epochs: int) -> None:
    print(f"\n## SimpleCNN, {epochs} epoch(s), flip only, same network and normalisation")
    rows = []
    runs = (
        ("seed recipe (PIL, batch 32)", lambda: seed_recipe(folder, epochs, torch.device("cpu"))),
        ("TensorLoader, batch 32", lambda: tensor_path(folder, epochs, 32, 1e-3, False)),
        ("TensorLoader, batch 128 + sched", lambda: tensor_path(folder, epochs, 128, 2e-3, True)),
        ("  + channels_last", lambda: tensor_path(folder, epochs, 128, 2e-3, True, True)),
    )
    for name, run in runs:
        seed_everything(0)
        start = time.perf_counter()
        speed, accuracy = run()
        rows.append((name, speed, accuracy, time.perf_counter() - start))
    print(f"{'pipeline':<33}{'train img/s':>12}{'test acc':>10}{'wall s':>9}{'vs seed':>9}")
    for name, speed, accuracy, wall in rows:
        print(f"{name:<33}{speed:>12.0f}{accuracy:>10.2%}{wall:>9.1f}{speed / rows[0][1]:>8.2f}x")


def section_recipe(folder: Path, epochs: int, device: torch.device) -> None:
    print(f"\n## cifar10_fast, {epochs} epochs, device {device}")
    start = time.perf_counter()
    train = load_cifar10(train=True, folder=folder)
    test = load_cifar10(train=False, folder=folder)
    result = cifar10_fast(train, test, epochs=epochs, device=device, progress=False)
    print(f"{'epoch':>5}{'test acc':>10}{'elapsed s':>11}")
    elapsed = 0.0
    for epoch, acc, seconds in zip(result.history.epoch, result.history.val_acc,
                                   result.history.seconds, strict=True):  # fmt: skip
        elapsed += seconds
        print(f"{epoch:>5}{acc:>10.2%}{elapsed:>11.1f}")
    print(result)
    print(f"wall time including data loading and decoding: {time.perf_counter() - start:.0f} s")


def images_per_second(model: nn.Module, batch_size: int, size: int = 32, steps: int = 4,
                      channels_last: bool = False) -> float:  # fmt: skip
    """Training steps on random tensors: compute only, no data loading."""
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x, y = torch.randn(batch_size, 3, size, size), torch.randint(0, 10, (batch_size,))
    if channels_last:
        model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    model.train()
    for step in range(steps + 1):
        if step == 1:  # the first step allocates and picks kernels
            start = time.perf_counter()
        loss = F.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return steps * batch_size / (time.perf_counter() - start)


def section_scaling() -> None:
    print("\n## Training images/s against batch size (compute only, random tensors)")
    sizes = (32, 64, 128, 256, 512, 1024)
    print(f"{'model':<10}" + "".join(f"{f'batch {b}':>12}" for b in sizes))
    for name, make in (("SimpleCNN", SimpleCNN), ("FastNet", FastNet)):
        torch.manual_seed(0)
        speeds = [images_per_second(make(), b, steps=max(2, 2048 // b)) for b in sizes]
        print(f"{name:<10}" + "".join(f"{s:>12.0f}" for s in speeds))
    print("\n## ResNet-18 (10 classes): 32-px CIFAR-10 images vs upsampled to 224 px")
    speeds = {}
    for size, batch in ((32, 128), (224, 16)):
        torch.manual_seed(0)
        speeds[size] = images_per_second(models.resnet18(num_classes=10), batch, size, steps=2)
        epoch_hours = 50_000 / speeds[size] / 3600
        print(f"{size:>4} px, batch {batch:>3}: {speeds[size]:8.1f} img/s "
              f"= {epoch_hours:6.2f} h per CIFAR-10 epoch")  # fmt: skip
    print(f"224 px costs {speeds[32] / speeds[224]:.0f}x more time per image "
          f"({(224 / 32) ** 2:.0f}x the pixels)")  # fmt: skip


def section_options() -> None:
    print("\n## fit's speed options at batch 256 (compute only, random tensors)")
    print(f"{'model':<10}{'plain':>10}{'channels_last':>15}{'compile':>10}{'compile s':>11}")
    for name, make in (("SimpleCNN", SimpleCNN), ("FastNet", FastNet)):
        torch.manual_seed(0)
        plain = images_per_second(make(), 256)
        last = images_per_second(make(), 256, channels_last=True)
        model = make()
        model.compile()
        start = time.perf_counter()
        images_per_second(model, 256, steps=1)  # compiles forward and backward
        compile_seconds = time.perf_counter() - start
        compiled = images_per_second(model, 256)
        print(f"{name:<10}{plain:>10.0f}{last:>15.0f}{compiled:>10.0f}{compile_seconds:>11.0f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_data_argument(parser)
    parser.add_argument("--only", choices=("simplecnn", "recipe", "scaling", "options"),
                        action="append")  # fmt: skip
    parser.add_argument("--epochs", type=int, default=2, help="SimpleCNN comparison epochs")
    parser.add_argument("--recipe-epochs", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    only = set(args.only or ("simplecnn", "recipe", "scaling", "options"))
    device = torch.device(args.device)
    folder = real_cifar10(args.data) if only & {"simplecnn", "recipe"} else None
    print(f"# bench_training_fast, real CIFAR-10 from {args.data}")
    print(machine_line(device))
    if "simplecnn" in only:
        section_simplecnn(folder, args.epochs)
    if "recipe" in only:
        section_recipe(folder, args.recipe_epochs, device)
    if "scaling" in only:
        section_scaling()
    if "options" in only:
        section_options()


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""SimpleCNN on real CIFAR-10: the seed tutorial's plain loop next to ``cnnlab.engine.fit``.

Three runs train the same ``SimpleCNN`` from the same seed for the same number of epochs
with Adam (lr 1e-3), reading JPEG files through PIL transforms, then measure test
accuracy. Printed: training images/s, seconds per epoch, test accuracy, and each speed
as a ratio to the seed's (taken in the same run, since machines are noisy).

1. The seed recipe, the source tutorial's: ``ImageFolder`` + ``RandomHorizontalFlip`` +
   ``ToTensor`` + ``Normalize(0.5, 0.5)``, ``DataLoader(batch_size=32, shuffle=True,
   num_workers=2)``, and the five-line loop.
2. ``fit`` on the seed's own loaders: isolates what the engine costs.
3. cnnlab's defaults: ``load_cifar10`` with the CIFAR-10 train preset (crop + flip),
   ``make_loader`` (batch 128, its worker default) and ``fit``.

    python benchmarks/bench_fit_vs_seed.py                # ../shared/data copy, 1 epoch
    python benchmarks/bench_fit_vs_seed.py --epochs 2 --data /path/to/cifar10-jpg
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from common import add_data_argument, machine_line, real_cifar10, seed_data, seed_recipe

from cnnlab import seed_everything
from cnnlab.data import (
    cifar10_eval_transform,
    cifar10_train_transform,
    load_cifar10,
    make_loader,
)
from cnnlab.engine import evaluate, fit
from cnnlab.models import SimpleCNN


def _fit_and_test(
    train_loader, test_loader, epochs: int, device: torch.device
) -> tuple[float, float]:
    model = SimpleCNN()
    history = fit(model, train_loader, epochs=epochs, lr=1e-3, device=device, progress=False)
    accuracy = evaluate(model, test_loader).accuracy
    return epochs * len(train_loader.dataset) / sum(history.seconds), accuracy


def fit_on_seed_data(folder: Path, epochs: int, device: torch.device) -> tuple[float, float]:
    """``fit`` on exactly the seed's loaders: what the engine itself costs or saves."""
    return _fit_and_test(*seed_data(folder), epochs, device)


def cnnlab_recipe(folder: Path, epochs: int, device: torch.device) -> tuple[float, float]:
    """cnnlab's presets (crop + flip, CIFAR-10 statistics), ``make_loader`` defaults
    (batch 128) and ``fit``; returns (images/s, test accuracy)."""
    train_set = load_cifar10(train=True, transform=cifar10_train_transform(), folder=folder)
    test_set = load_cifar10(train=False, transform=cifar10_eval_transform(), folder=folder)
    train_loader = make_loader(train_set, batch_size=128, shuffle=True)
    return _fit_and_test(train_loader, make_loader(test_set, batch_size=256), epochs, device)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_data_argument(parser)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    folder = real_cifar10(args.data)
    device = torch.device(args.device)
    print(
        f"# SimpleCNN, {args.epochs} epoch(s), Adam 1e-3, batch 32, real CIFAR-10 from {args.data}"
    )
    print(machine_line(device))
    rows = []
    recipes = (
        ("seed tutorial loop", seed_recipe),
        ("fit, seed's loaders", fit_on_seed_data),
        ("fit, cnnlab defaults", cnnlab_recipe),
    )
    for name, recipe in recipes:
        seed_everything(0)
        start = time.perf_counter()
        speed, accuracy = recipe(folder, args.epochs, device)
        rows.append((name, speed, accuracy, time.perf_counter() - start))
    print(
        f"{'recipe':<22}{'train img/s':>12}{'s/epoch':>10}{'test acc':>10}{'wall s':>9}{'vs seed':>9}"
    )
    for name, speed, accuracy, wall in rows:
        print(
            f"{name:<22}{speed:>12.0f}{50000 / speed:>10.1f}{accuracy:>10.2%}{wall:>9.1f}"
            f"{speed / rows[0][1]:>8.2f}x"
        )


if __name__ == "__main__":
    main()

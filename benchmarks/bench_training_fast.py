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
``recipe``     One epoch of the seed recipe, then ``cnnlab.recipes.cifar10_fast`` with its
               defaults in the same run: test accuracy after every epoch (evaluation
               time off the clock), the final accuracy with test-time augmentation (the
               test set's one use that counts), the time to 80 % and 85 %, and that time
               in seed-recipe epochs.
``ablation``   The recipe on a validation split (45,000 training images, 5,000 held out
               of the training set, never the test set): with everything, then with each
               technique switched off (the speed ones too: bfloat16 autocast and
               channels_last), one row each, in one run.
``tuning``     The candidates the recipe's defaults were chosen from, on the same split
               (not run by default: it trains five recipes).
``tiers``      The candidates the larger tiers (``cnnlab.recipes.TIERS``) were chosen from,
               on the same split (not run by default: six runs of larger networks;
               ``--tier thorough`` runs one tier's).
``scaling``    Training images/s against batch size (SimpleCNN, FastNet), and ResNet-18
               on 32-px inputs against the same images upsampled to 224 px.
``options``    SimpleCNN and FastNet at batch 256: plain, channels_last, channels_last with
               bfloat16 autocast, ``torch.compile`` (its compilation time reported apart).
``profile``    Where one SimpleCNN training step on real JPEG files spends its time: read
               and decode, PIL transforms, collate, compute (best of 3, batch 128).

    python benchmarks/bench_training_fast.py                    # everything, ../shared/data
    python benchmarks/bench_training_fast.py --only recipe        # the headline ratio
    python benchmarks/bench_training_fast.py --only ablation      # one row per technique
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from common import (
    add_data_argument,
    images_per_second,
    machine_line,
    real_cifar10,
    seed_recipe,
)
from torch.nn import functional as F
from torchvision import models

from cnnlab import seed_everything
from cnnlab.data import DecodedImages, TensorLoader, decode_images, load_cifar10
from cnnlab.engine import evaluate, fit
from cnnlab.models import FastNet, SimpleCNN
from cnnlab.recipes import cifar10_fast
from cnnlab.schedules import warmup_linear_decay
from cnnlab.settings import autocast_dtype, keep_freed_memory

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


def section_recipe(folder: Path, epochs: int | None, device: torch.device) -> None:
    print("\n## One epoch of the seed recipe, then cifar10_fast, in the same run", flush=True)
    seed_everything(0)
    speed, _ = seed_recipe(folder, 1, torch.device("cpu"))
    seed_epoch = 50_000 / speed
    print(f"seed recipe: {speed:.0f} training images/s, one epoch = {seed_epoch:.1f} s", flush=True)
    start = time.perf_counter()
    train = decode_images(load_cifar10(train=True, folder=folder))
    test = decode_images(load_cifar10(train=False, folder=folder))
    decoding = time.perf_counter() - start
    overrides = {"epochs": epochs} if epochs else {}
    result = cifar10_fast(train, test, device=device, progress=False, **overrides)
    print(f"{'epoch':>5}{'test acc':>10}{'elapsed s':>11}")
    elapsed = 0.0
    for epoch, acc, seconds in zip(result.history.epoch, result.accuracy, result.history.seconds,
                                   strict=True):  # fmt: skip
        elapsed += seconds
        print(f"{epoch:>5}{acc:>10.2%}{elapsed:>11.1f}")
    print(f"{'+TTA':>5}{result.test_accuracy:>10.2%}{result.seconds:>11.1f}")
    print(result)
    for target in (0.80, 0.85):
        reached = result.time_to.get(target)
        in_epochs = f"{reached / seed_epoch:.2f} seed-recipe epochs" if reached else "-"
        print(
            f"time to {target:.0%}: {f'{reached:.0f} s' if reached else 'not reached'} = {in_epochs}"
        )
    print(f"(decoding the JPEGs, or loading them from the cache: {decoding:.0f} s, not counted)")


ABLATION = {
    "everything (the recipe)": {},
    "no whitening stem": {"whiten": False},
    "no Lookahead": {"lookahead": False},
    "no label smoothing": {"label_smoothing": 0.0},
    "BatchNorm scales trained": {"frozen_bn_scale": False},
    "no larger rate for BatchNorm shifts": {"bias_scaler": 1.0},
    "random instead of alternating flips": {"flip": "random"},
    "no translation (crops)": {"translate": 0},
    "float32 instead of bfloat16 autocast": {"precision": "fp32"},
    "no channels_last memory order": {"channels_last": False},
}
# The candidates the recipe's defaults were chosen from, on the same validation split.
TUNING = {
    "8 epochs, batch 512, widths 32-64-128": {},
    "7 epochs": {"epochs": 7},
    "widths 48-96-192, 5 epochs": {"widths": (48, 96, 192), "epochs": 5},
    "batch 1024": {"batch_size": 1024},
    "9 epochs, the first 3 at 24 px": {"epochs": 9, "low_res_epochs": 3},
}
# The candidates each larger tier (cnnlab.recipes.TIERS) was chosen from, on the same split.
TIER_TUNING = {
    "accurate": {
        "widths 64-128-256, 10 epochs, the first 4 at 24 px": {
            "widths": (64, 128, 256), "epochs": 10, "low_res_epochs": 4},
        "widths 64-256-256, 8 epochs, the first 3 at 24 px": {
            "widths": (64, 256, 256), "epochs": 8, "low_res_epochs": 3},
        "widths 64-256-256, 10 epochs, the first 4 at 24 px": {
            "widths": (64, 256, 256), "epochs": 10, "low_res_epochs": 4},
        "widths 64-256-256, 12 epochs, the first 5 at 24 px": {
            "widths": (64, 256, 256), "epochs": 12, "low_res_epochs": 5},
    },
    "thorough": {
        "widths 64-256-256, 16 epochs, the first 6 at 24 px": {
            "widths": (64, 256, 256), "epochs": 16, "low_res_epochs": 6},
        "widths 96-256-384, 12 epochs, the first 5 at 24 px": {
            "widths": (96, 256, 384), "epochs": 12, "low_res_epochs": 5},
    },
}  # fmt: skip
# Test-time augmentation needs no run of its own: the recipe's last plain evaluation is the
# same network without it.


def validation_split(folder: Path, held_out: int = 5000):
    """45,000 training images and 5,000 held out of the training set (a fixed shuffle)."""
    full = decode_images(load_cifar10(train=True, folder=folder))
    order = torch.randperm(len(full.labels), generator=torch.Generator().manual_seed(1234))
    pick = lambda idx: DecodedImages(full.images[idx], full.labels[idx], full.classes)  # noqa: E731
    return pick(order[held_out:]), pick(order[:held_out])


def section_ablation(folder: Path, epochs: int | None) -> None:
    print("\n## Ablation on a validation split (45,000 / 5,000 of the training set)", flush=True)
    train, val = validation_split(folder)
    overrides = {"epochs": epochs} if epochs else {}
    print(f"{'recipe':<38}{'val acc':>9}{'+TTA':>8}{'train s':>9}{'vs recipe':>11}")
    reference = None
    for name, change in ABLATION.items():
        result = cifar10_fast(train, val, device="cpu", progress=False, **overrides, **change)
        plain, train_s = result.accuracy[-1], sum(result.history.seconds)
        reference = reference if reference is not None else result
        delta = 100 * (result.test_accuracy - reference.test_accuracy)
        print(
            f"{name:<38}{plain:>9.2%}{result.test_accuracy:>8.2%}{train_s:>9.0f}{delta:>+9.2f} pt",
            flush=True,
        )
        if result is reference:
            no_tta = 100 * (plain - result.test_accuracy)
            print(
                f"{'no test-time augmentation':<38}{plain:>9.2%}{'-':>8}{train_s:>9.0f}"
                f"{no_tta:>+9.2f} pt   (the same run, evaluated plain)",
                flush=True,
            )


def section_candidates(folder: Path, what: str, candidates: dict[str, dict]) -> None:
    """Train each candidate on the validation split: plain and TTA accuracy, training
    time, the accuracy after every epoch."""
    print(f"\n## Choosing {what} on the validation split (45,000 / 5,000)", flush=True)
    train, val = validation_split(folder)
    width = max(map(len, candidates)) + 2
    print(f"{'candidate':<{width}}{'val acc':>9}{'+TTA':>8}{'train s':>9}  per epoch")
    for name, change in candidates.items():
        result = cifar10_fast(train, val, device="cpu", progress=False, **change)
        plain, train_s = result.accuracy[-1], sum(result.history.seconds)
        curve = " ".join(f"{a:.1%}" for a in result.accuracy)
        print(f"{name:<{width}}{plain:>9.2%}{result.test_accuracy:>8.2%}{train_s:>9.0f}  {curve}",
              flush=True)  # fmt: skip


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
    print(f"{'model':<10}{'plain':>10}{'channels_last':>15}{'+ bf16':>9}{'compile':>10}"
          f"{'compile s':>11}")  # fmt: skip
    for name, make in (("SimpleCNN", SimpleCNN), ("FastNet", FastNet)):
        torch.manual_seed(0)
        plain = images_per_second(make(), 256)
        last = images_per_second(make(), 256, channels_last=True)
        bf16 = images_per_second(make(), 256, channels_last=True, bf16=True)
        model = make()
        model.compile()
        start = time.perf_counter()
        images_per_second(model, 256, steps=1)  # compiles forward and backward
        compile_seconds = time.perf_counter() - start
        compiled = images_per_second(model, 256)
        print(f"{name:<10}{plain:>10.0f}{last:>15.0f}{bf16:>9.0f}{compiled:>10.0f}"
              f"{compile_seconds:>11.0f}")  # fmt: skip
    print(
        "(+ bf16: channels_last under bfloat16 autocast; emulated, hence slow, on CPUs "
        "without bfloat16 instructions)"
    )


def section_profile(folder: Path) -> None:
    from cnnlab.data import cifar10_train_transform

    print("\n## One training step of SimpleCNN on real JPEG files, batch 128 (best of 3)")
    data = load_cifar10(train=True, folder=folder)  # PIL images, read from the files
    index = torch.randint(len(data), (128,), generator=torch.Generator().manual_seed(0)).tolist()
    transform = cifar10_train_transform()
    pil_images = [data[i][0] for i in index]
    tensors = [transform(im) for im in pil_images]
    model, labels = SimpleCNN(), torch.randint(0, 10, (128,))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)

    def step():
        loss = F.cross_entropy(model(torch.stack(tensors)), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    def best(fn) -> float:
        times = []
        for _ in range(3):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
        return 1000 * min(times)

    stages = {"read + decode (JPEG files)": best(lambda: [data[i][0] for i in index]),
              "transform (crop, flip, ToTensor, Normalize)": best(lambda: [transform(im) for im in pil_images]),
              "collate": best(lambda: torch.stack(tensors)),
              "compute (forward, backward, step)": best(step)}  # fmt: skip
    total = sum(stages.values())
    for name, ms in stages.items():
        print(f"{name:<46}{ms:8.1f} ms{ms / total:8.1%}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_data_argument(parser)
    parser.add_argument("--only", action="append", choices=("simplecnn", "recipe", "ablation",
                        "tuning", "tiers", "scaling", "options", "profile"))  # fmt: skip
    parser.add_argument(
        "--tier",
        action="append",
        choices=tuple(TIER_TUNING),
        help="with --only tiers: this tier's candidates (default: every tier)",
    )
    parser.add_argument("--epochs", type=int, default=2, help="SimpleCNN comparison epochs")
    parser.add_argument("--recipe-epochs", type=int, help="override the recipe's epochs")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    only = set(args.only or ("simplecnn", "recipe", "ablation", "scaling", "options", "profile"))
    device = torch.device(args.device)
    needs_data = only & {"simplecnn", "recipe", "ablation", "tuning", "tiers", "profile"}
    folder = real_cifar10(args.data) if needs_data else None
    print(f"# bench_training_fast, real CIFAR-10 from {args.data}")
    print(machine_line(device))
    # Process-wide, before anything runs, so the seed recipe gets it too (cifar10_fast
    # would switch it on for itself); autocast_dtype says what precision="auto" picks here.
    print(
        f"# freed memory kept for reuse: {keep_freed_memory()}; precision 'auto' on this "
        f"device: {autocast_dtype(device, 'auto') or torch.float32}"
    )
    if "simplecnn" in only:
        section_simplecnn(folder, args.epochs)
    if "recipe" in only:
        section_recipe(folder, args.recipe_epochs, device)
    if "ablation" in only:
        section_ablation(folder, args.recipe_epochs)
    if "tuning" in only:
        section_candidates(folder, "the recipe", TUNING)
    if "tiers" in only:
        for tier in args.tier or TIER_TUNING:
            section_candidates(folder, f"the {tier} tier", TIER_TUNING[tier])
    if "scaling" in only:
        section_scaling()
    if "options" in only:
        section_options()
    if "profile" in only:
        section_profile(folder)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Fine-tuning strategies measured with a backbone we pretrain ourselves on real CIFAR-10.

ImageNet weights cannot be downloaded on our machines, so the "pretrained network" is a
``SmallResNet`` trained here on five CIFAR-10 classes (the *source* task: airplane,
automobile, bird, cat, deer). It is then transferred to the other five (the *target*
task: dog, frog, horse, ship, truck) with only ``--per-class`` labelled images per class,
and the five strategies of notebook 04 are compared on the full target test split:

    (a) frozen backbone + new head      (b) last block unfrozen, small LR
    (c) all layers, discriminative LRs  (d) gradual unfreezing      (e) from scratch

It also times the frozen-backbone strategy two ways: the head trained through the whole
network every epoch, and the head trained on features cached once (feature extraction).

    python benchmarks/bench_fine_tuning.py                     # ../shared/data copy
    python benchmarks/bench_fine_tuning.py --pretrain-epochs 2 --per-class 100   # quicker
    python benchmarks/bench_fine_tuning.py --source-cache data/source.pt   # pretrain once
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from common import add_data_argument, machine_line, real_cifar10
from torch import nn

from cnnlab import seed_everything
from cnnlab.data import (
    cifar10_eval_transform,
    cifar10_train_transform,
    class_subset,
    load_cifar10,
    make_loader,
)
from cnnlab.engine import evaluate, fit
from cnnlab.finetune import STRATEGIES, format_results, run_strategy
from cnnlab.freezing import freeze_to
from cnnlab.models import SmallResNet

SOURCE = ["airplane", "automobile", "bird", "cat", "deer"]
TARGET = ["dog", "frog", "horse", "ship", "truck"]


def pretrain(folder: Path, epochs: int, width: int) -> tuple[SmallResNet, float, float]:
    """Train the source network; returns (model, source test accuracy, seconds)."""
    train = class_subset(load_cifar10(True, cifar10_train_transform(), folder=folder), SOURCE)
    test = class_subset(load_cifar10(False, cifar10_eval_transform(), folder=folder), SOURCE)
    loader = make_loader(train, batch_size=128, shuffle=True, seed=0, drop_last=True)
    model = SmallResNet(num_classes=len(SOURCE), width=width)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True,
                                weight_decay=5e-4)  # fmt: skip
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=0.1, pct_start=0.25, total_steps=epochs * len(loader)
    )
    start = time.perf_counter()
    fit(model, loader, epochs=epochs, optimizer=optimizer, scheduler=scheduler,
        scheduler_interval="step", loss_fn=nn.CrossEntropyLoss(label_smoothing=0.1),
        device="cpu", progress=False)  # fmt: skip
    seconds = time.perf_counter() - start
    return model, evaluate(model, make_loader(test, batch_size=256)).accuracy, seconds


def make_model_factory(source: SmallResNet, width: int):
    """``make_model(pretrained)`` for run_strategy: the source weights and a new head."""

    def make_model(pretrained: bool) -> SmallResNet:
        model = SmallResNet(num_classes=len(TARGET), width=width)
        if pretrained:
            body = {k: v for k, v in source.state_dict().items() if not k.startswith("head.")}
            missing = model.load_state_dict(body, strict=False).missing_keys
            assert all(k.startswith("head.") for k in missing), missing
        return model

    return make_model


def feature_extraction_speed(make_model, train, epochs: int) -> tuple[float, float]:
    """Seconds to train the head of a frozen backbone for ``epochs``: through the whole
    network each epoch, and on features cached once (including the caching)."""
    from cnnlab.transfer import extract_features

    loader = make_loader(train, batch_size=64, shuffle=True, seed=0)
    model = make_model(True)
    freeze_to(model, -1)
    start = time.perf_counter()
    fit(model, loader, epochs=epochs, optimizer=torch.optim.Adam(model.head.parameters(), 1e-3),
        device="cpu", progress=False)  # fmt: skip
    through_network = time.perf_counter() - start

    model = make_model(True)
    start = time.perf_counter()
    body = nn.Sequential(model.stem, model.layer1, model.layer2, model.layer3,
                         *model.head[:-1])  # fmt: skip
    cached = extract_features(body, make_loader(train, batch_size=256), "cpu", progress=False)
    head = model.head[-1]
    fit(head, make_loader(cached, batch_size=64, shuffle=True, seed=0), epochs=epochs,
        device="cpu", progress=False)  # fmt: skip
    return through_network, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_data_argument(parser)
    parser.add_argument("--pretrain-epochs", type=int, default=6)
    parser.add_argument("--per-class", type=int, default=200,
                        help="labelled target images per class")  # fmt: skip
    parser.add_argument("--epochs", type=int, default=10, help="fine-tuning epochs")
    parser.add_argument("--width", type=int, default=16)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--source-cache", type=Path, default=None,
                        help="save the pretrained source weights here, or load them if present")  # fmt: skip
    args = parser.parse_args()
    folder = real_cifar10(args.data)
    print(machine_line("cpu"), flush=True)

    seed_everything(0)
    if args.source_cache is not None and args.source_cache.exists():
        source = SmallResNet(num_classes=len(SOURCE), width=args.width)
        source.load_state_dict(torch.load(args.source_cache, weights_only=True))
        print(f"source task {SOURCE}: weights loaded from {args.source_cache}", flush=True)
    else:
        source, source_acc, source_s = pretrain(folder, args.pretrain_epochs, args.width)
        print(f"source task {SOURCE}: SmallResNet(width={args.width}), {args.pretrain_epochs} "
              f"epochs, {source_acc:.2%} test accuracy, {source_s:.0f} s", flush=True)  # fmt: skip
        if args.source_cache is not None:
            args.source_cache.parent.mkdir(parents=True, exist_ok=True)
            torch.save(source.state_dict(), args.source_cache)

    train = class_subset(load_cifar10(True, cifar10_train_transform(), folder=folder), TARGET,
                         per_class=args.per_class)  # fmt: skip
    test = class_subset(load_cifar10(False, cifar10_eval_transform(), folder=folder), TARGET)
    train_loader = make_loader(train, batch_size=64, shuffle=True, seed=0)
    test_loader = make_loader(test, batch_size=256)
    print(f"target task {TARGET}: {len(train)} training images, {len(test)} test images, "
          f"{args.epochs} epochs, Adam, head LR {args.lr:g}", flush=True)  # fmt: skip
    make_model = make_model_factory(source, args.width)
    results = []
    for strategy in STRATEGIES:
        results.append(run_strategy(strategy, make_model, train_loader, test_loader,
                                    epochs=args.epochs, lr=args.lr, device="cpu"))  # fmt: skip
        print(format_results(results[-1:]).splitlines()[1], flush=True)
    print()
    print(format_results(results))
    scratch = results[-1]
    for r in results[:-1]:
        print(f"{r.description:<32} {r.accuracy - scratch.accuracy:+.1%} accuracy vs scratch, "
              f"{r.seconds / scratch.seconds:.2f}x its time")  # fmt: skip

    plain_eval = class_subset(load_cifar10(True, cifar10_eval_transform(), folder=folder),
                              TARGET, per_class=args.per_class)  # fmt: skip
    through, cached = feature_extraction_speed(make_model, plain_eval, args.epochs)
    print(f"\nfrozen backbone, {args.epochs} epochs of head training: through the network "
          f"{through:.1f} s, on cached features {cached:.1f} s (caching included): "
          f"{through / cached:.1f}x faster")  # fmt: skip


if __name__ == "__main__":
    main()

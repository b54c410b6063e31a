#!/usr/bin/env python3
"""Knowledge distillation on real CIFAR-10: a teacher trained with the fast recipe, then the
same small student trained for the same epochs twice, from the labels alone and with the
teacher (``cnnlab.distillation``), in one run.

    python benchmarks/bench_distillation.py                 # ../shared/data, defaults
    python benchmarks/bench_distillation.py --student-epochs 6 --temperature 4
"""

from __future__ import annotations

import argparse
import time

import torch
from common import add_data_argument, machine_line, real_cifar10

from cnnlab import seed_everything
from cnnlab.data import TensorLoader, decode_images, load_cifar10
from cnnlab.distillation import Distillation
from cnnlab.engine import evaluate, fit
from cnnlab.models import SimpleCNN, count_macs
from cnnlab.recipes import cifar10_fast
from cnnlab.schedules import warmup_linear_decay


def train_student(train, test, epochs: int, teacher=None, temperature=4.0, alpha=0.9):
    """SimpleCNN with crop-and-flip batches, Adam and a warm-up/decay schedule; with a
    teacher, on the distillation loss. Returns (test accuracy, seconds)."""
    seed_everything(0)
    loader = TensorLoader(train, 256, shuffle=True, augment=True, seed=0, drop_last=True)
    student = SimpleCNN(num_classes=len(train.classes))
    optimizer = torch.optim.Adam(student.parameters(), lr=2e-3)
    scheduler = warmup_linear_decay(optimizer, epochs * len(loader), 0.1)
    model, loss = student, None
    if teacher is not None:
        model = Distillation(student, teacher, temperature=temperature, alpha=alpha)
        loss = model.loss
    start = time.perf_counter()
    fit(model, loader, epochs=epochs, optimizer=optimizer, scheduler=scheduler,
        scheduler_interval="step", loss_fn=loss, device="cpu", progress=False)  # fmt: skip
    seconds = time.perf_counter() - start
    return evaluate(student, TensorLoader(test, 1000)).accuracy, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_data_argument(parser)
    parser.add_argument("--teacher-epochs", type=int, default=8)
    parser.add_argument("--student-epochs", type=int, default=5)
    parser.add_argument("--temperature", type=float, default=4.0)
    parser.add_argument("--alpha", type=float, default=0.9)
    args = parser.parse_args()
    folder = real_cifar10(args.data)
    print("# bench_distillation, real CIFAR-10 from", args.data)
    print(machine_line("cpu"), flush=True)
    train = decode_images(load_cifar10(train=True, folder=folder))
    test = decode_images(load_cifar10(train=False, folder=folder))
    teacher = cifar10_fast(train, test, epochs=args.teacher_epochs, device="cpu",
                           progress=False)  # fmt: skip
    teacher_model = teacher.model.eval()
    alone, alone_s = train_student(train, test, args.student_epochs)
    taught, taught_s = train_student(train, test, args.student_epochs, teacher_model,
                                     args.temperature, args.alpha)  # fmt: skip
    macs = count_macs(teacher_model) / 1e6, count_macs(SimpleCNN()) / 1e6
    print(f"\n{'model':<46}{'test acc':>9}{'train s':>9}")
    print(f"{f'teacher: FastNet, fast recipe, {args.teacher_epochs} epochs ({macs[0]:.0f} M MACs)':<46}"
          f"{teacher.test_accuracy:>9.2%}{teacher.seconds:>9.0f}")  # fmt: skip
    print(f"{f'student: SimpleCNN, {args.student_epochs} epochs, labels only':<46}{alone:>9.2%}"
          f"{alone_s:>9.0f}")  # fmt: skip
    print(f"{f'student: the same, + the teacher (T={args.temperature:g}, alpha={args.alpha:g})':<46}"
          f"{taught:>9.2%}{taught_s:>9.0f}")  # fmt: skip
    print(f"(SimpleCNN: {macs[1]:.0f} M multiply-adds per image)")


if __name__ == "__main__":
    main()

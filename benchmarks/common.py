"""What every benchmark shares: where the real CIFAR-10 copy is, and a line describing
the machine, printed above the figures so that they are never read without it."""

from __future__ import annotations

import argparse
import os
import platform
from pathlib import Path

import torch

from cnnlab.data import prepare_cifar10_folder

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
    """``# x86_64, 2 cores, torch 2.x, 2 threads, device cpu``"""
    return (f"# {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
            f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {device}")  # fmt: skip

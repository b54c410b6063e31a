"""The rows of the combination test, shared by tests/test_combinations.py (one process)
and tests/test_distributed.py (two processes under torchrun, in the launch that module
makes anyway: each launch costs three interpreters), and what each row must show."""

from __future__ import annotations

import itertools
import sys
from dataclasses import fields
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent / "scripts"))

from combo import Row, run_row  # noqa: E402,F401  (run_row: for the tests)

FACTORS = {f.name: ([False, True] if f.name != "precision" else ["fp32", "bf16", "fp16"])
           for f in fields(Row)}  # fmt: skip
DTYPES = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}


def all_pairs() -> list[Row]:
    """A small set of rows in which every pair of factor values occurs (greedy, fixed)."""
    names = list(FACTORS)
    wanted = {(a, va, b, vb) for a, b in itertools.combinations(names, 2)
              for va in FACTORS[a] for vb in FACTORS[b]}  # fmt: skip
    candidates = [dict(zip(names, values, strict=True))
                  for values in itertools.product(*FACTORS.values())]  # fmt: skip

    def pairs(row):
        return {(a, row[a], b, row[b]) for a, b in itertools.combinations(names, 2)}

    rows = []
    while wanted:
        best = max(candidates, key=lambda row: len(pairs(row) & wanted))
        rows.append(Row(**best))
        wanted -= pairs(best)
    return rows


ROWS = all_pairs()


def _same_run(a: dict, b: dict, what: str, exact: bool) -> None:
    """Bit for bit in one process; under torchrun within float rounding (gloo's all-reduce
    adds the processes' gradients in an order that a fresh DDP wrapper may change)."""
    for name in ("epoch", "precision"):
        assert a["history"][name] == b["history"][name], f"{what}: {name} differs"
    for name in ("train_loss", "train_acc", "val_loss", "val_acc"):
        expected = b["history"][name] if exact else pytest.approx(b["history"][name], abs=2e-2)
        assert a["history"][name] == expected, f"{what}: {name} differs"
    if exact:
        assert a["weights"] == b["weights"], f"{what}: weights differ"
        return
    for key, value in b["weights"].items():  # BatchNorm statistics: relative to their size
        expected, got = torch.tensor(value), torch.tensor(a["weights"][key])
        tolerance = 1e-4 if key in b["parameters"] else 1e-2 * (1 + expected.abs().max().item())
        gap = (got - expected).abs().max().item()
        assert gap < tolerance, f"{what}: {key} differs by {gap}"


def check_row(row: Row, result: dict, where: str) -> None:
    """What every row must show, in one process or in each of two (``where`` says which)."""
    history = result["history"]
    assert set(history["precision"]) == {DTYPES[row.precision]}, where
    assert history["epoch"] == ([1, 2, 3] if row.early_stopping else [1, 2, 3, 4]), where
    assert result["checkpoint_matches_model"], f"{where}: the checkpoint holds other weights"
    assert result["last_val_acc"] == result["val_acc_of_returned_model"], (
        f"{where}: the last val_acc was measured on other weights than fit returned"
    )
    if row.resume:
        _same_run(result["resumed"], result, f"{where}, resumed vs uninterrupted", not row.ddp)
        assert result["resumed"]["rng_after"] == result["rng_after"], (
            f"{where}: the random generator did not continue where it was"
        )

"""Where features meet: fit with each precision (float32, bfloat16, float16 with a
GradScaler, all run on the CPU) crossed with Lookahead, EarlyStopping, GradualUnfreezing,
ProgressiveResizing and ModelCheckpoint, interrupted and resumed, in one process and in
two under torchrun (gloo). Every pair of these choices appears in at least one row
(all-pairs, not the 384-row product, to keep CI fast).

Each row checks: a resumed run equals the uninterrupted one (history and weights, bit for
bit, and each process's random generator after training); the checkpoint holds the
weights that fit returned and that the last val_acc measured; History says which dtype
ran; under torchrun, every process ends with the same weights."""

from __future__ import annotations

import itertools
import json
import sys
from dataclasses import asdict, fields
from pathlib import Path

import pytest
import torch

from tests.launch import torchrun

sys.path.insert(0, str(Path(__file__).parent / "scripts"))

from combo import Row, run_row  # noqa: E402

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


def test_the_rows_cover_every_pair_and_stay_few():
    names = list(FACTORS)
    for a, b in itertools.combinations(names, 2):
        seen = {(getattr(r, a), getattr(r, b)) for r in ROWS}
        assert seen == set(itertools.product(FACTORS[a], FACTORS[b])), (a, b)
    assert len(ROWS) <= 12, len(ROWS)


@pytest.fixture(scope="module")
def ddp_results(tmp_path_factory):
    """Every two-process row, run in one torchrun launch (one start-up for all)."""
    folder = tmp_path_factory.mktemp("combo-ddp")
    rows = [r for r in ROWS if r.ddp]
    spec = folder / "rows.json"
    spec.write_text(json.dumps([asdict(r) for r in rows]))
    script = Path(__file__).parent / "scripts" / "combo_run.py"
    done = torchrun(script, folder, spec, timeout=600)
    resumes = sum(r.resume for r in rows)
    assert done.stdout.count("resumed from") == resumes  # said once, by rank 0 alone
    return [json.loads((folder / f"results-rank{r}.json").read_text()) for r in (0, 1)]


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


def _check(row: Row, result: dict, where: str) -> None:
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


@pytest.mark.parametrize("row", [r for r in ROWS if not r.ddp], ids=Row.name)
def test_one_process(row, tmp_path):
    _check(row, run_row(row, tmp_path), row.name())


@pytest.mark.parametrize("row", [r for r in ROWS if r.ddp], ids=Row.name)
def test_two_processes_under_torchrun(row, ddp_results):
    first, second = (results[row.name()] for results in ddp_results)
    for rank, result in enumerate((first, second)):
        _check(row, result, f"{row.name()}, rank {rank}")
    for name in first["parameters"]:  # (BatchNorm statistics are each process's own)
        assert first["weights"][name] == second["weights"][name], f"the replicas drifted: {name}"
    assert first["rng_after"] != second["rng_after"], "each process should keep its own generator"


def test_restoring_lookaheads_slow_weights_matters(tmp_path, monkeypatch):
    """The mutant that skips Lookahead's restore must be caught: the resumed run then
    differs from the uninterrupted one (the rows above show that with the restore it
    does not)."""
    from cnnlab.callbacks import Lookahead

    monkeypatch.setattr(Lookahead, "load_state_dict", lambda self, state: None)
    row = Row("fp32", lookahead=True, early_stopping=False, gradual=False, resizing=False,
              resume=True, accumulate=False, ddp=False)  # fmt: skip
    result = run_row(row, tmp_path)
    assert result["resumed"]["weights"] != result["weights"]

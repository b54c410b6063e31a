"""Where features meet: fit with each precision (float32, bfloat16, float16 with a
GradScaler, all run on the CPU) crossed with Lookahead, EarlyStopping, GradualUnfreezing,
ProgressiveResizing and ModelCheckpoint, interrupted and resumed, in one process and in
two under torchrun (gloo). Every pair of these choices appears in at least one row
(all-pairs, not the 384-row product, to keep CI fast). The rows live in
tests/combinations.py; those in two processes run in tests/test_distributed.py, in the
torchrun launch that module makes anyway.

Each row checks: a resumed run equals the uninterrupted one (history and weights, bit for
bit, and each process's random generator after training); the checkpoint holds the
weights that fit returned and that the last val_acc measured; History says which dtype
ran; under torchrun, every process ends with the same weights."""

from __future__ import annotations

import itertools

import pytest

from tests.combinations import FACTORS, ROWS, Row, check_row, run_row


def test_the_rows_cover_every_pair_and_stay_few():
    names = list(FACTORS)
    for a, b in itertools.combinations(names, 2):
        seen = {(getattr(r, a), getattr(r, b)) for r in ROWS}
        assert seen == set(itertools.product(FACTORS[a], FACTORS[b])), (a, b)
    assert len(ROWS) <= 12, len(ROWS)


@pytest.mark.parametrize("row", [r for r in ROWS if not r.ddp], ids=Row.name)
def test_one_process(row, tmp_path):
    check_row(row, run_row(row, tmp_path), row.name())


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

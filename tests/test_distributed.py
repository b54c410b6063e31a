"""Distributed data parallel on the CPU: `torchrun --standalone --nproc_per_node=2` with
Gloo, over the offline stand-in. Every rank ends with the same weights, rank 0 alone
writes the checkpoint, two processes with batch b train exactly like one with batch 2b
over the same samples, and `cnnlab train` runs there too. The same launch runs the
two-process rows of the combination test (tests/combinations.py: resuming under
torchrun, with every callback and precision); test_combinations.py runs the others."""

from __future__ import annotations

import json
import runpy
import sys
from dataclasses import asdict
from pathlib import Path
from typing import NamedTuple

import pytest
import torch

from tests.combinations import ROWS, Row, check_row
from tests.launch import SWITCHES, torchrun

HERE = Path(__file__).parent
SCRIPT = HERE / "scripts" / "ddp_run.py"
TOLERANCE = 1e-4  # all-reduced gradients add in another order than one batch's


def _weights(folder, rank=0):
    return torch.load(folder / f"weights-rank{rank}.pt", weights_only=True)


def _history(folder):
    return json.loads((folder / "history.json").read_text())


class Runs(NamedTuple):
    ddp: Path  # the two-process run's folder
    single: Path  # the one-process reference's folder
    cli: Path  # the model `cnnlab train` wrote under torchrun
    stdout: str  # what the launch printed
    combo: list[dict]  # each rank's results of the combination rows


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The uninterrupted two-process run, then the two-process combination rows and
    `cnnlab train` in the same two processes (one torchrun launch: each costs three
    interpreters), and the single-process reference at batch 2b, run here (one torch
    thread, as each torchrun process has)."""
    ddp, single = tmp_path_factory.mktemp("ddp"), tmp_path_factory.mktemp("single")
    cli = tmp_path_factory.mktemp("cli") / "model.pt"
    rows = tmp_path_factory.mktemp("combo-ddp") / "rows.json"
    rows.write_text(json.dumps([asdict(r) for r in ROWS if r.ddp]))
    done = torchrun(SCRIPT, "--out", ddp, "--epochs", 2, "--batch", 32, "--then-rows", rows,
                    "--then-cli", cli, timeout=600)  # fmt: skip
    resumes = sum(r.resume for r in ROWS if r.ddp)
    assert done.stdout.count("resumed from") == resumes  # said once, by rank 0 alone
    threads = torch.get_num_threads()
    with pytest.MonkeyPatch.context() as mp:
        for name, value in SWITCHES.items():
            mp.setenv(name, value)
        mp.setattr(sys, "argv", [str(SCRIPT), "--out", str(single), "--epochs", "2",
                                 "--batch", "64", "--reference"])  # fmt: skip
        torch.set_num_threads(1)
        try:
            runpy.run_path(str(SCRIPT), run_name="__main__")
        finally:
            torch.set_num_threads(threads)
    combo = [json.loads((rows.parent / f"results-rank{r}.json").read_text()) for r in (0, 1)]
    return Runs(ddp, single, cli, done.stdout, combo)


def test_every_rank_holds_the_same_weights_and_one_checkpoint_is_written(runs):
    ddp = runs.ddp
    first, second = _weights(ddp, 0), _weights(ddp, 1)
    assert all(torch.equal(first[k], second[k]) for k in first)
    assert [p.name for p in (ddp / "checkpoints").iterdir()] == ["last.pt"]
    steps = json.loads((ddp / "steps.json").read_text())
    assert steps == {"per_epoch": 4, "world": 2}  # 256 images / 2 processes / batch 32


def test_two_processes_with_batch_b_train_like_one_with_batch_2b(runs):
    ddp, single = runs.ddp, runs.single
    a, b = _weights(ddp), _weights(single)
    worst = max(float((a[k] - b[k]).abs().max()) for k in a)
    assert worst < TOLERANCE, worst
    h_ddp, h_single = _history(ddp), _history(single)
    for name in ("train_loss", "val_loss"):
        assert h_ddp[name] == pytest.approx(h_single[name], abs=1e-4), name
    assert h_ddp["val_acc"] == h_single["val_acc"] and h_ddp["train_acc"] == h_single["train_acc"]


def test_cnnlab_train_under_torchrun_writes_one_model_that_evaluate_accepts(
    runs, monkeypatch, capsys
):
    out = runs.cli
    assert runs.stdout.count("saved ") == 1  # rank 0 reports
    assert sorted(p.name for p in out.parent.iterdir()) == ["model-training.pt", "model.pt"]
    from cnnlab.cli import main  # in this process: a plain one, as after training

    for name in ("CNNLAB_OFFLINE", "CNNLAB_FAST"):
        monkeypatch.setenv(name, "1")
    assert main(["evaluate", str(out)]) == 0
    assert "test accuracy" in capsys.readouterr().out


@pytest.mark.parametrize("row", [r for r in ROWS if r.ddp], ids=Row.name)
def test_combination_rows_under_torchrun(row, runs):
    """Each row as in test_combinations.py, on both processes, which end with the same
    weights (BatchNorm statistics are each process's own) and their own generators."""
    first, second = (results[row.name()] for results in runs.combo)
    for rank, result in enumerate((first, second)):
        check_row(row, result, f"{row.name()}, rank {rank}")
    for name in first["parameters"]:
        assert first["weights"][name] == second["weights"][name], f"the replicas drifted: {name}"
    assert first["rng_after"] != second["rng_after"], "each process should keep its own generator"

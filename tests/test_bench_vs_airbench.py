"""benchmarks/bench_vs_airbench.py: its CPU port of airbench94 runs, and its JSON is what
the issue promised other tools (``.ci/run`` installs the ``benchmarks`` extra)."""

import importlib
import json
import sys
import time
from functools import partial
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def bench():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        yield importlib.import_module("bench_vs_airbench")
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))


def test_time_to_a_level_is_the_first_epoch_or_the_final_evaluation_that_reaches_it(bench):
    run = {"curve": [(10.0, 0.70), (20.0, 0.86), (30.0, 0.84)], "final_tta": 0.905,
           "seconds": 31.5, "epochs": 3}  # fmt: skip
    assert bench.time_to(run, 0.85) == 20.0  # the first epoch past it, not the last
    assert bench.time_to(run, 0.90) == 31.5  # only the final evaluation (with TTA) got there
    assert bench.time_to(run, 0.92) is None
    written = json.loads(json.dumps(bench.as_json({"airbench94": run, "fast": run}, {"fast": 2.0})))
    assert set(written) == {"airbench94", "fast"}
    assert written["fast"]["time_to"]["0.85"] == 20.0 and written["fast"]["time_to"]["0.90"] == 31.5
    assert written["fast"]["time_to"]["0.92"] is None and written["fast"]["final_tta"] == 0.905
    assert (
        written["fast"]["float32_factor"] == 2.0 and "float32_factor" not in written["airbench94"]
    )


def test_the_airbench94_port_trains_on_the_cpu_in_bfloat16_and_in_float32(bench, tmp_path,
                                                                          monkeypatch):  # fmt: skip
    """The port of airbench's train loop on a few stand-in batches: accuracy after every
    epoch, the final TTA one, on the clock; the package's own hyper-parameters, shrunk."""
    from airbench import lib_airbench94

    from cnnlab.data import StandInCIFAR10, decode_images

    hyp = json.loads(json.dumps(lib_airbench94.hyp))
    hyp["opt"].update(batch_size=64, train_epochs=1.5)
    hyp["net"]["widths"] = {"block1": 8, "block2": 16, "block3": 16}
    monkeypatch.setattr(lib_airbench94, "hyp", hyp)
    data = decode_images(StandInCIFAR10(size=192))
    bench.airbench_data(data, data, tmp_path)
    assert torch.load(tmp_path / "train.pt")["images"].shape == (192, 32, 32, 3)  # NHWC uint8
    for dtype in (torch.bfloat16, None):
        torch.manual_seed(0)
        handed_over = []
        run = bench.train94_cpu(tmp_path, dtype, after_epoch=partial(handed_over.append, 1))
        assert run["epochs"] == 1.5 and len(run["curve"]) == 2  # 1.5 epochs: two passes
        assert len(handed_over) == 2  # the relay gets a turn after each
        assert run["seconds"] >= run["curve"][-1][0] > 0 and 0 <= run["final_tta"] <= 1


def test_the_float32_estimate_measures_each_recipes_training_compute(bench, monkeypatch):
    from airbench import lib_airbench94

    from cnnlab.recipes import FastRecipe

    hyp = json.loads(json.dumps(lib_airbench94.hyp))
    hyp["net"]["widths"] = {"block1": 8, "block2": 8, "block3": 8}
    monkeypatch.setattr(lib_airbench94, "hyp", hyp)
    monkeypatch.setattr(bench, "TIERS", {"tiny": FastRecipe(widths=(8, 8, 8), batch_size=16,
                                                            epochs=3, low_res_epochs=1)})  # fmt: skip
    sizes = []
    real = bench.images_per_second

    def measured(net, batch, px, steps, channels_last, bf16):
        sizes.append((batch, px, bf16))
        return real(net, min(batch, 16), px, steps=1, channels_last=channels_last, bf16=bf16)

    monkeypatch.setattr(bench, "images_per_second", measured)
    factors = bench.float32_factors(["tiny"], rounds=2)
    assert set(factors) == {"airbench94", "tiny"} and all(f > 0 for f in factors.values())
    assert sizes[: len(sizes) // 2] == sizes[len(sizes) // 2 :]  # each round measures them all
    assert (16, 24, False) in sizes and (16, 32, True) in sizes  # both sizes, both precisions
    assert (1024, 32, False) in sizes  # airbench94 at its own batch size


def test_the_recipes_take_turns_epoch_by_epoch_and_each_clock_stops_while_it_waits(bench):
    """The default race: one recipe computes at a time, handing over after each epoch,
    those with fewer epochs drop out of the rotation, and waiting is off each one's clock."""
    log = []

    def recipe(name: str, epochs: int):
        def train(after_epoch):
            on_clock = 0.0
            for epoch in range(1, epochs + 1):
                start = time.perf_counter()
                log.append((name, epoch))
                time.sleep(0.02)
                on_clock += time.perf_counter() - start
                after_epoch()
            return {"epochs": epochs, "seconds": on_clock}

        return train

    runs = bench.run_relay({"airbench94": recipe("airbench94", 3), "fast": recipe("fast", 1),
                            "accurate": recipe("accurate", 2)})  # fmt: skip
    assert log == [("airbench94", 1), ("fast", 1), ("accurate", 1),
                   ("airbench94", 2), ("accurate", 2), ("airbench94", 3)]  # fmt: skip
    assert list(runs) == ["airbench94", "fast", "accurate"]
    assert runs["airbench94"]["seconds"] < 0.02 * 3 + 0.05  # not the others' 0.06 s of turns


def test_a_recipe_that_fails_in_the_relay_lets_the_others_finish_then_raises(bench):
    finished = []

    def broken(after_epoch):
        after_epoch()
        raise RuntimeError("out of memory")

    def fine(after_epoch):
        for _ in range(3):
            after_epoch()
        finished.append(True)
        return {}

    with pytest.raises(RuntimeError, match="out of memory"):
        bench.run_relay({"broken": broken, "fine": fine})
    assert finished == [True]  # no deadlock: the failed one left the rotation


def test_a_tier_hands_over_after_each_epoch_with_its_accuracy_already_measured(bench, monkeypatch):
    import cnnlab.recipes
    from cnnlab.data import StandInCIFAR10, decode_images
    from cnnlab.recipes import FastRecipe

    tiny = FastRecipe(widths=(8, 8, 8), batch_size=32, epochs=2, tta_translate=0)
    monkeypatch.setitem(cnnlab.recipes.TIERS, "tiny", tiny)
    data = decode_images(StandInCIFAR10(size=128))
    seen = []
    real_evaluate = cnnlab.recipes.evaluate

    def evaluate(*args, **kwargs):
        seen.append("evaluated")
        return real_evaluate(*args, **kwargs)

    monkeypatch.setattr(cnnlab.recipes, "evaluate", evaluate)
    run = bench.run_tier("tiny", data, data, seed=0, after_epoch=lambda: seen.append("handed over"))
    assert seen == ["evaluated", "handed over"] * 2 + ["evaluated"]  # the last: final, with TTA
    assert len(run["curve"]) == 2 and run["epochs"] == 2 and 0 <= run["final_tta"] <= 1

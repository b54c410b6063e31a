"""Fine-tuning strategies: each freezes what it says, uses the LRs it says, and reports
honest figures."""

from __future__ import annotations

import pytest

from cnnlab.finetune import STRATEGIES, configure, format_results, run_strategy
from cnnlab.freezing import group_table
from cnnlab.models import SmallResNet
from cnnlab.plots import plot_strategies


@pytest.mark.parametrize(
    ("strategy", "trained_groups", "lrs"),
    [
        ("frozen", ["head"], {"head": 1e-2}),
        ("last_block", ["layer3", "head"], {"layer3": 1e-3, "head": 1e-2}),
        ("discriminative", ["stem", "layer1", "layer2", "layer3", "head"],
         {"stem": 1e-4, "layer2": 1e-3, "head": 1e-2}),
        ("gradual", ["head"], {"stem": 1e-4, "head": 1e-2}),
        ("scratch", ["stem", "layer1", "layer2", "layer3", "head"], {"all": 1e-2}),
    ],
)  # fmt: skip
def test_configure_freezes_and_sets_learning_rates(strategy, trained_groups, lrs):
    model = SmallResNet(width=8)
    optimizer, callbacks = configure(strategy, model, lr=1e-2, epochs=10)
    rows = group_table(model).rows
    assert [r.name for r in rows if r.trainable] == trained_groups
    got = {g["name"]: g["lr"] for g in optimizer.param_groups}
    for name, lr in lrs.items():
        assert got[name] == pytest.approx(lr)
    assert (len(callbacks) == 1) == (strategy == "gradual")


def test_run_strategy_reports_accuracy_time_and_trained_parameters(tiny_loaders):
    train, test = tiny_loaders
    results = [
        run_strategy(
            s, lambda pretrained: SmallResNet(width=8), train, test, epochs=1, lr=3e-3, device="cpu"
        )  # fmt: skip
        for s in ("frozen", "scratch")
    ]
    frozen, scratch = results
    head = 8 * 8 * 10 + 10
    assert frozen.trainable == head < frozen.total == scratch.trainable == scratch.total
    assert all(0 <= r.accuracy <= 1 and r.seconds > 0 and len(r.history) == 1 for r in results)
    table = format_results(results)
    assert STRATEGIES["frozen"] in table and f"{head:,}" in table
    assert plot_strategies(results).axes[0].get_xlabel() == "training time (s)"


def test_unknown_strategy_lists_the_known_ones():
    with pytest.raises(ValueError, match="gradual"):
        configure("everything", SmallResNet(width=8), lr=1e-3, epochs=1)

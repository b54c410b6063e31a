"""Measured figures have one home, cnnlab/measured.json: every figure there says when, where
and how it was measured, and the README's tables and the notebooks' run-time lines are
copies of it (`python .ci/sync_figures.py` makes them)."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import pytest

from cnnlab.figures import figure, names

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
_spec = importlib.util.spec_from_file_location("sync_figures", ROOT / ".ci" / "sync_figures.py")
sync = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(sync)
HINT = "run `python .ci/sync_figures.py` after changing cnnlab/measured.json"


@pytest.mark.parametrize("name", names())
def test_every_figure_says_when_where_and_how(name):
    f = figure(name)
    assert re.fullmatch(r"\d{4}-\d\d-\d\d", f.date), f.date
    assert f.machine and f.command and f.rows
    assert all(len(row) == len(f.columns) for row in f.rows)


def test_the_readme_tables_are_the_measured_figures():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert sync.render_readme(readme) == readme, HINT
    shown = set(re.findall(r"<!-- figure: (\w+) -->", readme))
    assert {
        "notebook_times",
        "notebook02_result",
        "fast_recipe",
        "recipe_tuning",
        "recipe_ablation",
        "tier_tuning",
        "vs_airbench",
        "vs_airbench_epyc",
        "distillation",
    } <= shown


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_each_notebooks_run_time_is_the_measured_one(path):
    assert sync.render_notebook(path) == path.read_text(encoding="utf-8"), HINT
    header = "".join(json.loads(path.read_text(encoding="utf-8"))["cells"][0]["source"])
    assert "*Run time: " in header
    # The run-time sentence is rewritten alone: the header's next sentence survives it.
    assert "timings.*\n\nTerms in **bold** are in the [glossary](" in header


def test_rewriting_the_run_time_line_leaves_the_rest_of_the_header_alone():
    header = "# 05\n\n*Run time: old figures.*\n\nTerms in **bold** are in the glossary."
    rewritten = sync.RUNTIME.sub("*Run time: new.*", header, count=1)
    assert rewritten == "# 05\n\n*Run time: new.*\n\nTerms in **bold** are in the glossary."


def test_notebook_02_and_the_readme_agree_on_the_headline_accuracy():
    accuracy = figure("notebook02_result").rows[0][1]
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    notebook = (ROOT / "notebooks" / "02_training_on_cifar10.ipynb").read_text(encoding="utf-8")
    assert accuracy in readme
    assert 'figure_table(\\"notebook02_result\\")' in notebook  # printed, not restated


@pytest.mark.parametrize(("notebook", "name"), [
    ("02_training_on_cifar10.ipynb", "notebook02_result"),
    ("04_fine_tuning_freeze_unfreeze.ipynb", "fine_tuning"),
    ("04_fine_tuning_freeze_unfreeze.ipynb", "distillation"),
    ("06_saving_and_deploying.ipynb", "serving_latency"),
    ("07_training_fast.ipynb", "fast_recipe"),
    ("07_training_fast.ipynb", "recipe_tuning"),
    ("07_training_fast.ipynb", "recipe_ablation"),
    ("07_training_fast.ipynb", "tier_tuning"),
    ("07_training_fast.ipynb", "vs_airbench"),
])  # fmt: skip
def test_notebooks_print_the_headline_figures_the_readme_shows(notebook, name):
    """The fast recipe's accuracy and time, notebook 02's accuracy and the others: the
    notebook prints the measured table (never a copy of its numbers) and the README shows
    the same figure, rendered from the same entry."""
    text = (ROOT / "notebooks" / notebook).read_text(encoding="utf-8")
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert f'figure_table(\\"{name}\\")' in text
    assert f"<!-- figure: {name} -->\n{figure(name).markdown()}\n<!-- /figure -->" in readme


def test_the_airbench_comparison_keeps_each_recipes_curve_for_the_trade_off_plot():
    """Notebook 07 draws measured.json's curves: every recipe of the table has one, its last
    point the final TTA accuracy shown in the table."""
    from cnnlab.recipes import TIERS

    f = figure("vs_airbench")
    assert set(f.curves) == {"airbench94", *TIERS}  # every tier, as the benchmark runs them
    for name, points in f.curves.items():
        seconds = [s for s, _ in points]
        assert seconds == sorted(seconds) and all(0 < a < 1 for _, a in points), name
        assert any(row[1] == name and f"{points[-1][1]:.2%}" in row for row in f.rows), name

"""The course's website (docs/): the cache of executed notebooks, the clean-up of their
outputs for a page, the chapter pages' links and info line, and the browser test itself,
held to a small site broken in every way it must catch."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "docs"))

import check_site  # noqa: E402
import executed  # noqa: E402
import pages  # noqa: E402


def _nb(*cells: tuple[str, str]) -> dict:
    return {"cells": [{"cell_type": k, "source": s, "metadata": {}, "outputs": []}
                      for k, s in cells], "metadata": {}}  # fmt: skip


def test_cache_key_follows_the_code_cells_and_the_mode_only():
    base = executed.cache_key(_nb(("markdown", "# title"), ("code", "x = 1")), "smoke")
    assert executed.cache_key(_nb(("markdown", "# new prose"), ("code", "x = 1")), "smoke") == base
    assert executed.cache_key(_nb(("markdown", "# title"), ("code", "x = 2")), "smoke") != base
    assert executed.cache_key(_nb(("markdown", "# title"), ("code", "x = 1")), "full") != base
    # moving code from one cell into two is a different notebook
    assert executed.cache_key(_nb(("code", "x"), ("code", " = 1")), "smoke") != \
        executed.cache_key(_nb(("code", "x = 1")), "smoke")  # fmt: skip


def test_clean_keeps_a_progress_bar_at_its_last_state_and_merges_streams():
    nb = _nb(("code", "train()"))
    nb["cells"][0]["outputs"] = [
        {"output_type": "stream", "name": "stderr", "text": "epochs:   0%|  | 0/2\r"},
        {"output_type": "stream", "name": "stderr", "text": ["epochs:  50%|# | 1/2\r",
                                                             "epochs: 100%|##| 2/2\n"]},
        {"output_type": "stream", "name": "stdout", "text": "done\n"},
    ]  # fmt: skip
    outputs = executed.clean(nb)["cells"][0]["outputs"]
    assert [o["name"] for o in outputs] == ["stderr", "stdout"]
    assert outputs[0]["text"] == "epochs: 100%|##| 2/2\n"


def test_nested_progress_bars_end_as_a_terminal_shows_them():
    """tqdm redraws a bar with a carriage return, and a nested bar one line down, coming back
    up with ESC[A; a bar closed with leave=False is blanked out. The page shows the end."""
    stream = (
        "\repochs:   0%| | 0/2\n\repoch 1:  50%| | 1/2\x1b[A\n\repoch 1: 100%| | 2/2\x1b[A"
        "\n\r                    \x1b[A\repochs:  50%| | 1/2\n\repoch 2: 100%| | 2/2\x1b[A"
        "\n\r                    \x1b[A\repochs: 100%| | 2/2\ndone\n"
    )
    assert executed.terminal(stream) == "epochs: 100%| | 2/2\ndone\n"
    nb = _nb(("code", "decode()"))
    nb["cells"][0]["outputs"] = [{"output_type": "stream", "name": "stderr",
                                  "text": "\rdecoding: 50%\r              \r"}]  # fmt: skip
    assert executed.clean(nb)["cells"][0]["outputs"] == []  # no empty box on the page


def test_clean_replaces_widgets_by_a_note_and_drops_their_state():
    nb = _nb(("code", "interact(f)"))
    nb["metadata"]["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": {}}}
    figure = {"output_type": "display_data", "metadata": {}, "data": {"image/png": "iVBO"}}
    view = {"output_type": "display_data", "metadata": {},
            "data": {executed.WIDGET_VIEW: {"model_id": "abc"}, "text/plain": "VBox(...)"}}  # fmt: skip
    nb["cells"][0]["outputs"] = [figure, view]
    cleaned = executed.clean(nb)
    outputs = cleaned["cells"][0]["outputs"]
    assert outputs[0] == figure  # what the widget showed first stays
    assert outputs[1]["data"] == {"text/html": executed.WIDGET_NOTE}
    assert "widgets" not in cleaned["metadata"]


def test_what_a_widget_first_showed_is_read_from_its_state_once():
    """nbclient may file interact's first figure inside the Output widget's state instead of
    the cell's outputs; the page shows it either way, and never twice."""
    figure = {"output_type": "display_data", "metadata": {}, "data": {"image/png": "iVBO"}}
    state = {
        "box": {"model_name": "VBoxModel", "state": {"children": ["IPY_MODEL_out"]}},
        "out": {"model_name": "OutputModel", "state": {"outputs": [figure]}},
    }
    view = {"output_type": "display_data", "metadata": {},
            "data": {executed.WIDGET_VIEW: {"model_id": "box"}}}  # fmt: skip
    for inline in ([], [figure]):  # in the state only (nbclient), and also inline (nbval)
        nb = _nb(("code", "interact(f)"))
        nb["metadata"]["widgets"] = {executed.WIDGET_STATE: {"state": state}}
        nb["cells"][0]["outputs"] = [*inline, view]
        outputs = executed.clean(nb)["cells"][0]["outputs"]
        assert [o for o in outputs if "image/png" in o["data"]] == [figure]
        assert {"text/html": executed.WIDGET_NOTE} in [o["data"] for o in outputs]


def test_store_stamps_when_where_how_long_and_replaces_the_stale_copy(tmp_path, monkeypatch):
    monkeypatch.setattr(executed, "CACHE", tmp_path / "cache")
    notebook = tmp_path / "01_demo.ipynb"
    notebook.write_text(json.dumps(_nb(("code", "1 + 1"))))
    stale = executed.cache_file(notebook, "smoke", "0" * 16)
    stale.parent.mkdir(parents=True)
    stale.write_text("{}")
    path = executed.store(notebook, _nb(("code", "1 + 1")), "smoke", 12.34, ["a note"])
    assert executed.cached(notebook, "smoke") == path and not stale.exists()
    site = json.loads(path.read_text())["metadata"]["cnnlab_site"]
    assert site["mode"] == "smoke" and site["seconds"] == 12.3 and site["notes"] == ["a note"]
    assert "core" in site["machine"] and site["finished"].endswith("UTC")
    assert not list(path.parent.glob("*.tmp"))
    notebook.write_text(json.dumps(_nb(("code", "1 + 2"))))  # the code changed: a miss
    assert executed.cached(notebook, "smoke") is None


def test_pytest_stores_notebooks_only_in_the_smoke_mode(monkeypatch):
    monkeypatch.setenv("CNNLAB_FAST", "1")
    monkeypatch.setenv("CNNLAB_OFFLINE", "1")
    assert executed.smoke_environment()
    monkeypatch.setenv("CNNLAB_FAST", "0")  # CNNLAB_FAST=0 pytest: a full run, not ours
    assert not executed.smoke_environment()
    monkeypatch.delenv("CNNLAB_OFFLINE")
    monkeypatch.setenv("CNNLAB_FAST", "1")
    assert not executed.smoke_environment()


def test_links_to_pages_stay_and_other_files_go_to_github():
    repo = "https://github.com/cnnlab/cnnlab"
    site = {"README.md", "notebooks/02_x.ipynb", "notebooks/GLOSSARY.md"}
    text = ("[a](notebooks/02_x.ipynb#sec) [b](cnnlab/settings.py) [c](https://pytorch.org) "
            "[d](benchmarks/bench.py#L3)")  # fmt: skip
    fixed = pages._fix_links(text, ".", site, repo)
    assert "[a](notebooks/02_x.ipynb#sec)" in fixed and "[c](https://pytorch.org)" in fixed
    assert f"[b]({repo}/blob/main/cnnlab/settings.py)" in fixed
    assert f"[d]({repo}/blob/main/benchmarks/bench.py#L3)" in fixed
    from_chapter = pages._fix_links("[g](GLOSSARY.md) [s](../cnnlab/x.py)", "notebooks", site, repo)
    assert "[g](GLOSSARY.md)" in from_chapter and f"({repo}/blob/main/cnnlab/x.py)" in from_chapter


@pytest.mark.parametrize("mode", ["smoke", "full"])
def test_chapter_info_says_how_the_outputs_were_made(mode):
    nb = {"metadata": {"cnnlab_site": {"mode": mode, "finished": "2026-11-30 20:00 UTC",
                                       "seconds": 754.0, "machine": "2-core CPU", "notes": ["N"]}}}  # fmt: skip
    info = pages.chapter_info(nb, "https://colab/x", "../downloads/x.ipynb")
    assert "[Open in Colab](https://colab/x)" in info and "Download notebook" in info
    assert "finished 2026-11-30 20:00 UTC on a 2-core CPU, in 13 min" in info
    assert ("smoke run" in info) == (mode == "smoke") and info.rstrip().endswith("</div>")
    assert "\nN\n" in info


def test_progress_bars_are_text_when_asked():
    code = "import importlib; print(importlib.import_module('cnnlab.engine.fit').tqdm.__module__)"
    env = os.environ | {"CNNLAB_PROGRESS": "text"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.stdout.strip() == "tqdm.std", out.stderr


BROKEN_PAGE = """<!doctype html><html><head><title>t</title></head><body><main>
<div class="bd-header-announcement">Smoke build: numbers mean nothing</div>
<p>Raw math: $x^2 + y$ left for the reader.</p>
<span class="math">\\(a\\)</span>
<a href="missing.html">gone</a> <a href="index.html#nowhere">no anchor</a>
<a href="index.html#here" id="here">fine</a>
<img src="absent.png"> <img src="https://example.invalid/badge.svg">
<div class="cell"><div class="cell_output"><div class="output traceback">Traceback: boom</div></div></div>
<div class="cell tag_raises-exception"><div class="cell_output"><div class="output traceback">
Traceback: taught</div></div></div>
<details open><summary>Solution</summary>given away</details>
<script>console.error("a script broke")</script>
</main></body></html>"""


@pytest.mark.skipif(check_site.chromium() is None, reason="needs Chromium (.ci/run installs it)")
def test_browser_check_finds_every_kind_of_defect(tmp_path):
    pytest.importorskip("playwright", reason='needs pip install -e ".[site]"')

    (tmp_path / "notebooks").mkdir()
    (tmp_path / "index.html").write_text(BROKEN_PAGE)
    (tmp_path / "notebooks" / "01_x.html").write_text(
        "<html><body><main><p>no banner, no figure</p></main></body></html>")  # fmt: skip
    (tmp_path / "search.html").write_text(
        '<html><body><div id="search-results"><p>Your search did not match any documents.'
        "</p></div></body></html>"
    )
    manifest = {"mode": "smoke", "figures": {"notebooks/01_x.html": 2, "notebooks/02_y.html": 1}}
    (tmp_path / "site.json").write_text(json.dumps(manifest))
    problems = "\n".join(check_site.check(tmp_path, True, None, []))
    for expected in [
        "index.html: console error: a script broke",
        "index.html: request leaves the site: https://example.invalid/badge.svg",
        "index.html: raw math '$x^2 + y$'",
        "index.html: math not typeset",
        "index.html: broken link to missing.html",
        "index.html: broken anchor index.html#nowhere",
        "index.html: image does not load: absent.png",
        "index.html: error output: Traceback: boom",
        "index.html: 1 solutions shown open",
        "notebooks/01_x.html: smoke banner missing",
        "notebooks/01_x.html: 0 figures shown, the notebook made 2",
        "notebooks/02_y.html: chapter page missing",
        "search.html: nothing found for 'Grad-CAM'",
    ]:
        assert expected in problems
    assert "taught" not in problems  # a cell tagged raises-exception may show its error
    assert "#here" not in problems


def test_a_build_killed_while_storing_leaves_no_half_notebook(tmp_path, monkeypatch):
    """The copy is written beside its final name and renamed: killed in between, the cache
    holds no entry for the notebook, so the next build runs it again."""
    monkeypatch.setattr(executed, "CACHE", tmp_path / "cache")
    notebook = tmp_path / "02_demo.ipynb"
    notebook.write_text(json.dumps(_nb(("code", "train()"))))

    def killed(self, target):
        raise KeyboardInterrupt

    monkeypatch.setattr(Path, "replace", killed)
    with pytest.raises(KeyboardInterrupt):
        executed.store(notebook, _nb(("code", "train()")), "full", 60.0, [])
    assert executed.cached(notebook, "full") is None


@pytest.mark.parametrize(("code", "says"), [
    ('tm = build_transfer_model("resnet18", 10)', True),
    ('get_model("resnet18", weights="DEFAULT")', True),
    ('resnet50(weights=None)', False),
    ("model = SimpleCNN()", False),
])  # fmt: skip
def test_the_stand_in_weights_note_goes_where_pretrained_weights_are_loaded(tmp_path, code, says):
    notebook = tmp_path / "03_demo.ipynb"
    notebook.write_text(json.dumps(_nb(("markdown", "weights=DEFAULT in prose"), ("code", code))))
    assert executed.uses_pretrained_weights(notebook) is says

"""What every lesson notebook promises: its parts are there, cells stay short, and the
hidden exercise solutions really run."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LESSONS = sorted(
    p for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb") if not p.name.startswith("00_")
)
MAX_CODE_LINES = 25


def cells(path: Path) -> list[dict]:
    return json.loads(path.read_text(encoding="utf-8"))["cells"]


def source(cell: dict) -> str:
    return "".join(cell["source"])


def solutions(path: Path) -> list[str]:
    blocks = []
    for cell in cells(path):
        if cell["cell_type"] == "markdown":
            for hidden in re.findall(r"<details>(.*?)</details>", source(cell), flags=re.S):
                blocks += re.findall(r"```python\n(.*?)```", hidden, flags=re.S)
    return blocks


@pytest.mark.parametrize("path", LESSONS, ids=lambda p: p.name)
def test_lesson_has_every_part(path):
    text = "\n".join(source(c) for c in cells(path))
    first = source(cells(path)[0])
    assert first.startswith("# "), "a title first"
    assert "You will learn" in first and "colab-badge.svg" in first and "GLOSSARY.md" in first
    assert 'if "google.colab" in sys.modules' in source(cells(path)[1]), "then the setup cell"
    assert "## Exercises" in text and "<details>" in text
    assert "## Summary" in text and "**Next:**" in text


@pytest.mark.parametrize("path", LESSONS, ids=lambda p: p.name)
def test_code_cells_are_short(path):
    long = [(i, len(source(c).splitlines())) for i, c in enumerate(cells(path))
            if c["cell_type"] == "code" and len(source(c).splitlines()) > MAX_CODE_LINES]  # fmt: skip
    assert not long, f"cells (index, lines) longer than {MAX_CODE_LINES} lines: {long}"


@pytest.mark.parametrize("path", LESSONS, ids=lambda p: p.name)
def test_every_exercise_has_a_solution(path):
    text = "\n".join(source(c) for c in cells(path))
    exercises = len(re.findall(r"^### (?:Exercise|Check) \d", text, flags=re.M))
    assert exercises >= 2 and len(solutions(path)) == exercises


SOLUTIONS = [(p, i, code) for p in LESSONS for i, code in enumerate(solutions(p))]


@pytest.mark.parametrize(
    "path, index, code", SOLUTIONS, ids=[f"{p.name}-{i + 1}" for p, i, _ in SOLUTIONS]
)
def test_solution_runs(path, index, code, monkeypatch):
    """Each hidden solution is self-contained and runs (smoke + offline, like the notebooks)."""
    import matplotlib

    matplotlib.use("Agg")
    monkeypatch.setenv("CNNLAB_FAST", os.environ.get("CNNLAB_FAST", "1"))
    monkeypatch.setenv("CNNLAB_OFFLINE", os.environ.get("CNNLAB_OFFLINE", "1"))
    monkeypatch.chdir(path.parent)
    namespace = {"__name__": "__solution__"}
    try:
        exec(compile(code, f"{path.name}:solution-{index + 1}", "exec"), namespace)
    finally:
        # The solution's functions hold the namespace (their globals) and it holds them: a
        # cycle that would leave its data loaders to the garbage collector, whose clean-up
        # of loader workers waits 5 s per worker (tests/conftest.py, release_loader_workers).
        namespace.clear()


def _tags(cell: dict) -> list[str]:
    return cell.get("metadata", {}).get("tags", [])


RAISING = [p for p in LESSONS if any("raises-exception" in _tags(c) for c in cells(p))]
MIN_BROKEN_CELLS = {"05_debugging.ipynb": 10}  # the debugging lesson reproduces many errors


@pytest.mark.parametrize("path", RAISING, ids=lambda p: p.name)
def test_broken_cells_announce_the_error_they_raise(path):
    """Each `raises-exception` cell names its exception on its first line; the root
    conftest.py checks, during nbval's run, that the cell raises exactly that."""
    broken = [source(c) for c in cells(path) if "raises-exception" in _tags(c)]
    unannounced = [b.splitlines()[0] for b in broken if not re.match(r"# raises: \w+", b)]
    assert not unannounced, f"start these cells with '# raises: ExceptionName': {unannounced}"
    assert len(broken) >= MIN_BROKEN_CELLS.get(path.name, 1)


# Bold that is emphasis, a name or a heading-like lead-in, not a term the glossary defines.
EMPHASIS = {
    "154 mb",
    "alexnet",
    "blur",
    "bold",
    "can",
    "cannot",
    "constant",
    "flowers-102",
    "large data",
    "measure",
    "on a gpu",
    "once",
    "raise",
    "randomise the weights",
    "read and decode",
    "really fails",
    "resnet",
    "resnet-50, 101 and 152",
    "serve the onnx file",
    "sharpen",
    "shift+enter",
    "shuffled labels",
    "silent",
    "small data",
    "step",
    "the check",
    "two cpu processes",
    "vgg-16",
    "windows and macos",
    "you will learn to",
    "zero_grad",
}


def test_terms_in_bold_are_in_the_glossary():
    """Every notebook's header promises that terms in bold are in the glossary."""
    glossary = (ROOT / "notebooks" / "GLOSSARY.md").read_text(encoding="utf-8")
    english = " | ".join(line.split("|")[1].strip().lower() for line in glossary.splitlines()
                         if line.startswith("| "))  # fmt: skip
    missing = {}
    for path in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        for cell in cells(path):
            if cell["cell_type"] != "markdown":
                continue
            for bold in re.findall(r"\*\*([^*]+)\*\*", source(cell)):
                term = " ".join(bold.lower().replace("`", "").split())
                if term[-1] in ".:?" or term in EMPHASIS:
                    continue  # a lead-in such as **Fix.** or **Next:**
                if term not in english and term.removesuffix("s") not in english:
                    missing.setdefault(path.name, []).append(bold)
    assert not missing, f"add these to notebooks/GLOSSARY.md (or unbold them): {missing}"


def test_each_lesson_ends_with_a_link_to_the_next_one():
    """Notebook 03's "Next: 04" was plain text: a reader had to find the file by hand."""
    paths = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    for path, following in zip(paths, paths[1:], strict=False):
        last = source([c for c in cells(path) if c["cell_type"] == "markdown"][-1])
        assert f"**Next:** [{following.name[:2]} · " in last, path.name
        assert f"]({following.name})" in last, f"{path.name}: no link to {following.name}"

"""Executed notebooks for the website: their cache, their clean-up, and how they are run.

One executed copy per notebook, mode and content: the file name carries a hash of the
mode and of every code cell's source, so editing a markdown cell re-renders without
re-running, and editing code re-runs that notebook only. Two writers fill the cache:
``docs/build.py`` (nbclient, for whatever is missing) and the root ``conftest.py``
(pytest's own nbval run in smoke mode), so CI executes each notebook once.

    >>> key = cache_key({"cells": [{"cell_type": "code", "source": "1 + 1"}]}, "smoke")
    >>> len(key)
    16
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
CACHE = ROOT / "_build" / "site-cache"

# What each mode sets in the kernels' environment; a value the caller set wins.
MODES: dict[str, dict[str, str]] = {
    "smoke": {"CNNLAB_FAST": "1", "CNNLAB_OFFLINE": "1"},
    "full": {"CNNLAB_FAST": "0"},
}
# Progress bars as text (tqdm's widget bar has no static form to show on a web page).
KERNEL_ENV = {"CNNLAB_PROGRESS": "text", "TQDM_MININTERVAL": "5"}
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_NOTE = (
    "<p class='cnnlab-widget-note'>Here, when you run the notebook, are the controls of an "
    "interactive widget; this page shows what it displayed first.</p>"
)


WEIGHTS_NOTE = (
    "Pretrained weights could not be downloaded on the machine that built these pages: "
    "random weights stood in for them, so results of pretrained networks on this page are "
    "those of random ones. On your machine, online, the notebook downloads the real weights."
)
OFFLINE_NOTE = (
    "Its data could not be downloaded on the machine that built these pages, so this chapter "
    "ran with `CNNLAB_OFFLINE=1`: generated stand-in data and random weights, each announced "
    "by a banner in the outputs. Online, the notebook uses the real data."
)


def uses_pretrained_weights(notebook: Path) -> bool:
    """Whether the notebook's code asks for pretrained weights (so that a build with
    stand-in weights must say so on its page)."""
    nb = json.loads(notebook.read_text(encoding="utf-8"))
    code = "\n".join(_source(c) for c in nb["cells"] if c["cell_type"] == "code")
    return "build_transfer_model" in code or re.search(r"weights=(?!None)", code) is not None


def text_of(value: str | list[str]) -> str:
    """A notebook's multi-line string (a cell's source, a stream's text), stored either
    way nbformat allows."""
    return "".join(value) if isinstance(value, list) else value


def _source(cell: dict) -> str:
    return text_of(cell.get("source", ""))


def cache_key(nb: dict, mode: str) -> str:
    """16 hex digits from the mode and the code cells' sources, in order."""
    digest = hashlib.sha256(mode.encode())
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            digest.update(b"\0" + _source(cell).encode())
    return digest.hexdigest()[:16]


def cache_file(notebook: Path, mode: str, key: str) -> Path:
    """``_build/site-cache/<mode>/<stem>.<key>.ipynb``"""
    return CACHE / mode / f"{notebook.stem}.{key}.ipynb"


def cached(notebook: Path, mode: str) -> Path | None:
    """The executed copy of ``notebook`` for ``mode`` if one matches its code, else None."""
    nb = json.loads(notebook.read_text(encoding="utf-8"))
    path = cache_file(notebook, mode, cache_key(nb, mode))
    return path if path.exists() else None


def smoke_environment() -> bool:
    """Whether the CNNLAB_* switches are the smoke mode's (pytest stores what it ran then)."""
    return all(os.environ.get(name) == value for name, value in MODES["smoke"].items())


_CONTROL = re.compile(r"(\r\n|\r|\n|\x1b\[\d*A)")


def terminal(text: str) -> str:
    r"""What a terminal shows once ``text`` has been written to it: a carriage return goes
    back to the start of the line, ``ESC[nA`` up n lines (tqdm redraws a bar in place,
    and nested bars this way); lines a closed bar blanked out are dropped.

    >>> terminal("epochs: 0/2\n batch 1\x1b[A\n batch 2\x1b[A\repochs: 2/2\n")
    'epochs: 2/2\n batch 2'
    """
    lines: list[list[str]] = [[]]
    row = col = 0
    for token in _CONTROL.split(text):
        if token in ("\n", "\r\n"):
            row, col = row + 1, 0
            lines += [[] for _ in range(row + 1 - len(lines))]
        elif token == "\r":
            col = 0
        elif token.startswith("\x1b["):
            row = max(0, row - int(token[2:-1] or 1))
        elif token:
            lines[row][col : col + len(token)] = token
            col += len(token)
    shown = ["".join(line).rstrip() for line in lines if not line or "".join(line).strip()]
    return "\n".join(shown)


def _merge_streams(outputs: list[dict]) -> list[dict]:
    """Consecutive stream outputs of one name merged, and shown as a terminal would."""
    merged: list[dict] = []
    for out in outputs:
        if out.get("output_type") == "stream" and merged \
                and merged[-1].get("output_type") == "stream" \
                and merged[-1]["name"] == out["name"]:  # fmt: skip
            merged[-1]["text"] = text_of(merged[-1]["text"]) + text_of(out["text"])
        else:
            merged.append(dict(out))
    for out in merged:
        if out.get("output_type") == "stream":
            out["text"] = terminal(text_of(out["text"]))
    # a stream that only drew bars which were then cleared shows nothing: no empty box
    return [o for o in merged if o.get("output_type") != "stream" or o["text"].strip()]


WIDGET_STATE = "application/vnd.jupyter.widget-state+json"


def _widget_outputs(model_id: str, state: dict, seen: set[str]) -> list[dict]:
    """What Output widgets inside widget ``model_id`` captured (``interact`` shows its
    function's first result in one), from the widget state nbclient stores."""
    if model_id in seen or model_id not in state:
        return []
    seen.add(model_id)
    model = state[model_id]
    found = list(model.get("state", {}).get("outputs", [])) \
        if model.get("model_name") == "OutputModel" else []  # fmt: skip
    for child in model.get("state", {}).get("children", []):
        found += _widget_outputs(str(child).removeprefix("IPY_MODEL_"), state, seen)
    return found


def clean(nb: dict) -> dict:
    """Outputs made for a page: streams merged and shown as a terminal would, a widget
    replaced by a note followed by what it displayed first (nbval receives that as plain
    outputs; nbclient, depending on timing, inside the widget's state, which this reads),
    and the widget state dropped (it would load JavaScript from a CDN)."""
    state = nb.get("metadata", {}).get("widgets", {}).get(WIDGET_STATE, {}).get("state", {})
    for cell in nb["cells"]:
        if cell["cell_type"] != "code":
            continue
        outputs: list[dict] = []
        for out in _merge_streams(cell.get("outputs", [])):
            view = out.get("data", {}).get(WIDGET_VIEW)
            if view is None:
                outputs.append(out)
                continue
            outputs.append({"output_type": "display_data", "metadata": {},
                            "data": {"text/html": WIDGET_NOTE}})  # fmt: skip
            shown = _widget_outputs(view.get("model_id", ""), state, set())
            outputs += [o for o in shown if o not in outputs]  # nbval saw them already
        cell["outputs"] = outputs
    nb.get("metadata", {}).pop("widgets", None)
    return nb


def machine() -> str:
    """``2-core Intel(R) Xeon(R) Processor (AVX-512, bf16), torch 2.14.1, no GPU``: where
    the outputs were made, as the measured figures name machines."""
    import torch

    from cnnlab.figures import cpu_name

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return f"{os.cpu_count()}-core {cpu_name()}, torch {torch.__version__.split('+')[0]}, {gpu}"


def store(notebook: Path, executed: dict, mode: str, seconds: float, notes: list[str]) -> Path:
    """Write ``executed`` to the cache as it ran (raw streams, widget state: :func:`clean`
    runs when the page is made, so a better clean-up needs no re-run), stamped with when,
    where and how long."""
    source = json.loads(notebook.read_text(encoding="utf-8"))
    executed.setdefault("metadata", {})["cnnlab_site"] = {
        "mode": mode,
        "finished": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "seconds": round(seconds, 1),
        "machine": machine(),
        "notes": notes,
    }
    path = cache_file(notebook, mode, cache_key(source, mode))
    path.parent.mkdir(parents=True, exist_ok=True)
    for stale in path.parent.glob(f"{notebook.stem}.*.ipynb"):
        stale.unlink()
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(executed, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    tmp.replace(path)  # a build killed mid-write leaves no half notebook in the cache
    return path


def execute(notebook: Path, mode: str, notes: list[str]) -> Path:
    """Run ``notebook`` with nbclient in its folder and cache the result. The kernel gets
    this process's environment (``python docs/executed.py`` adds the mode's switches).

    Cells tagged ``raises-exception`` may raise (the lessons' broken cells); any other
    error stops the run with nbclient's ``CellExecutionError``, naming the cell.
    """
    import nbclient
    import nbformat

    nb = nbformat.read(notebook, as_version=4)
    start = time.perf_counter()
    nbclient.NotebookClient(
        nb, timeout=None, kernel_name="python3",
        resources={"metadata": {"path": str(notebook.parent)}},
    ).execute()  # fmt: skip
    return store(
        notebook, json.loads(nbformat.writes(nb)), mode, time.perf_counter() - start, notes
    )


if __name__ == "__main__":  # python docs/executed.py NOTEBOOK MODE '["note", ...]'
    import sys

    mode = sys.argv[2]
    for name, value in (MODES[mode] | KERNEL_ENV).items():
        os.environ.setdefault(name, value)  # the caller's values win
    print(execute(Path(sys.argv[1]).resolve(), mode, json.loads(sys.argv[3])))

#!/usr/bin/env python3
"""Rewrite every notebook's Colab badge, setup cell and links to the home URL in
pyproject.toml.

A fork changes one line -- ``[project.urls] Homepage`` -- and runs this script. The setup
cell that installs cnnlab on Colab is written here once (:func:`setup_cell`) and copied
into every notebook; tests/test_project.py and tests/test_colab.py check that notebooks
and pyproject agree and run that cell's Colab branch.

    python .ci/sync_home_url.py
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
SETUP_MARKER = 'if "google.colab" in sys.modules:'


def home() -> str:
    """``owner/repo`` of the project's home on GitHub, from pyproject.toml."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    return project["urls"]["Homepage"].rstrip("/").split("github.com/", 1)[1]


def setup_cell(owner_repo: str) -> str:
    """The first code cell of every notebook. On Colab it installs cnnlab (and the packages
    Colab lacks) without touching what Colab has loaded; a failed install shows pip's own
    messages, then stops. Elsewhere it only reports the GPU."""
    return f"""# Setup. On Colab this installs cnnlab from its repository (Colab's own torch and
# widgets are left as they are); on your machine `pip install -e ".[notebooks]"` did it.
import subprocess
import sys

if "google.colab" in sys.modules:
    pip = subprocess.run([sys.executable, "-m", "pip", "install", "-q",
                          "cnnlab @ git+https://github.com/{owner_repo}"],
                         capture_output=True, text=True)
    if pip.returncode != 0:
        print(pip.stdout[-3000:], pip.stderr[-3000:], sep="\\n")
        raise RuntimeError("installing cnnlab failed: pip's messages are above. Check the "
                           "runtime is online (Runtime > Restart session), then run again.")

import torch

print("GPU:", torch.cuda.get_device_name(0) if torch.cuda.is_available()
      else "none (on Colab: Runtime > Change runtime type > T4 GPU)")"""


def setup_cell_index(cells: list[dict]) -> int:
    """The setup cell is the first code cell, and it holds the Colab branch."""
    first = next(i for i, c in enumerate(cells) if c["cell_type"] == "code")
    if SETUP_MARKER not in "".join(cells[first]["source"]):
        raise ValueError(f"the first code cell has no {SETUP_MARKER!r}: it is not a setup cell")
    return first


def colab_url(owner_repo: str, notebook: str) -> str:
    return f"https://colab.research.google.com/github/{owner_repo}/blob/main/notebooks/{notebook}"


def glossary_url(owner_repo: str) -> str:
    return f"https://github.com/{owner_repo}/blob/main/notebooks/GLOSSARY.md"


def _lines(text: str) -> list[str]:
    lines = text.split("\n")
    return [line + "\n" for line in lines[:-1]] + ([lines[-1]] if lines[-1] else [])


def sync(path: Path, owner_repo: str) -> bool:
    """Bring one notebook in line; True when it changed."""
    text = path.read_text(encoding="utf-8")
    nb = json.loads(text)
    setup = setup_cell_index(nb["cells"])
    nb["cells"][setup]["source"] = _lines(setup_cell(owner_repo))
    for cell in nb["cells"]:
        source = "".join(cell["source"])
        if cell["cell_type"] == "markdown":
            # relative links do not resolve on Colab: the glossary link gets an "on GitHub"
            # twin and a link to a notebook an "on Colab" twin (the relative link is the one
            # that works in JupyterLab, offline too)
            new = re.sub(r" \(\[on GitHub\]\(https://github\.com/[\w.-]+/[\w.-]+/blob/main/"
                         r"notebooks/GLOSSARY\.md\)\)", "", source)  # fmt: skip
            new = re.sub(r"\]\((?:\./|https://github\.com/[\w.-]+/[\w.-]+/blob/main/notebooks/)?"
                         r"GLOSSARY\.md\)", "](GLOSSARY.md)", new)  # fmt: skip
            new = new.replace("](GLOSSARY.md)",
                              f"](GLOSSARY.md) ([on GitHub]({glossary_url(owner_repo)}))")  # fmt: skip
            new = re.sub(
                r"\]\((\d\d_[a-z0-9_]+\.ipynb)\)(?! \(\[on Colab\])",
                lambda m: f"]({m.group(1)}) ([on Colab]({colab_url(owner_repo, m.group(1))}))",
                new,
            )
            cell["source"] = _lines(new)
    new_text = json.dumps(nb, indent=1, ensure_ascii=False) + "\n"
    new_text = re.sub(r"github\.com/[\w.-]+/[\w.-]+?(?=/|\"|\\| |\)|$)",
                      f"github.com/{owner_repo}", new_text)  # fmt: skip
    new_text = re.sub(r"colab\.research\.google\.com/github/[\w.-]+/[\w.-]+/",
                      f"colab.research.google.com/github/{owner_repo}/", new_text)  # fmt: skip
    if new_text != text:
        path.write_text(new_text, encoding="utf-8")
        return True
    return False


def main() -> int:
    owner_repo = home()
    changed = 0
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        if sync(path, owner_repo):
            changed += 1
            print(f"updated {path.relative_to(ROOT)}")
    print(f"{changed} notebook(s) now point at github.com/{owner_repo}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

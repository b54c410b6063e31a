#!/usr/bin/env python3
"""Rewrite every notebook's Colab badge and setup cell to the home URL in pyproject.toml.

A fork changes one line -- ``[project.urls] Homepage`` -- and runs this script.
tests/test_project.py checks that notebooks and pyproject agree.

    python .ci/sync_home_url.py
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    owner_repo = project["urls"]["Homepage"].rstrip("/").split("github.com/", 1)[1]
    changed = 0
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        text = path.read_text(encoding="utf-8")
        new = re.sub(
            r"github\.com/[\w.-]+/[\w.-]+?(?=/|\"|\\| |\)|$)", f"github.com/{owner_repo}", text
        )
        new = re.sub(
            r"colab\.research\.google\.com/github/[\w.-]+/[\w.-]+/",
            f"colab.research.google.com/github/{owner_repo}/",
            new,
        )
        if new != text:
            path.write_text(new, encoding="utf-8")
            changed += 1
            print(f"updated {path.relative_to(ROOT)}")
    print(f"{changed} notebook(s) now point at github.com/{owner_repo}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

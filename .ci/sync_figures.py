#!/usr/bin/env python3
"""Render the measured figures (cnnlab/measured.json, their one home) into the README and
the notebooks' run-time lines.

In README.md, a block between ``<!-- figure: NAME -->`` and ``<!-- /figure -->`` is
replaced by that figure's table and caption; in each notebook, the header's
``*Run time: ...*`` sentence is rewritten. tests/test_figures.py fails when a copy
disagrees with measured.json.

    python .ci/sync_figures.py
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from sync_home_url import _lines  # noqa: E402  (notebook text to source lines, one way)

from cnnlab.figures import figure, runtime_line  # noqa: E402

BLOCK = re.compile(r"(<!-- figure: (\w+) -->\n)(.*?)(<!-- /figure -->)", re.S)
RUNTIME = re.compile(r"\*Run time: [^*]*\*")


def render_readme(text: str) -> str:
    return BLOCK.sub(lambda m: f"{m.group(1)}{figure(m.group(2)).markdown()}\n{m.group(4)}", text)


def render_notebook(path: Path) -> str:
    text = path.read_text(encoding="utf-8")
    nb = json.loads(text)
    first = nb["cells"][0]
    source = "".join(first["source"])
    line = runtime_line(path.name[:2])
    if RUNTIME.search(source):
        source = RUNTIME.sub(lambda m: line, source, count=1)
    first["source"] = _lines(source)
    return json.dumps(nb, indent=1, ensure_ascii=False) + "\n"


def main() -> int:
    readme = ROOT / "README.md"
    changed = []
    new = render_readme(readme.read_text(encoding="utf-8"))
    if new != readme.read_text(encoding="utf-8"):
        readme.write_text(new, encoding="utf-8")
        changed.append(readme)
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        new = render_notebook(path)
        if new != path.read_text(encoding="utf-8"):
            path.write_text(new, encoding="utf-8")
            changed.append(path)
    for path in changed:
        print("updated", path.relative_to(ROOT))
    print(f"{len(changed)} file(s) updated from cnnlab/measured.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())

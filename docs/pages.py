"""The website's source pages, assembled from the repository for Sphinx: the README as
the home page, each executed notebook as a chapter (with a line saying when, where and
how long its outputs were computed), the glossary, and a page per ``cnnlab`` module.

    >>> github_link("cnnlab/settings.py", "https://github.com/cnnlab/cnnlab")
    'https://github.com/cnnlab/cnnlab/blob/main/cnnlab/settings.py'
"""

from __future__ import annotations

import json
import pkgutil
import re
import shutil
from pathlib import Path

from executed import NOTEBOOKS, ROOT, clean, text_of

from cnnlab.figures import duration

COLAB_BADGE = re.compile(r"\[!\[Open In Colab\]\([^)]*\)\]\(([^)]*)\)")
LINK = re.compile(r"\]\(([^)#\s]+)(#[^)\s]*)?\)")


def repository() -> str:
    """The project's home as ``pyproject.toml`` declares it."""
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    return re.search(r'^Homepage = "([^"]+)"', text, re.MULTILINE).group(1)


def github_link(path: str, repo: str) -> str:
    """Where a repository file that is not a page of the site is read on GitHub."""
    return f"{repo}/blob/main/{path}"


def _fix_links(text: str, here: str, pages: set[str], repo: str) -> str:
    """Links to pages stay relative; links to other files of the repository (``here`` is
    the page's folder) point at GitHub, since the site does not carry them."""

    def fix(match: re.Match) -> str:
        target, anchor = match.group(1), match.group(2) or ""
        if "://" in target or target.startswith("mailto:"):
            return match.group(0)
        path = (Path(here) / target).as_posix()
        path = re.sub(r"[^/]+/\.\./", "", path).lstrip("./")
        if path in pages:
            return match.group(0)
        return f"]({github_link(path, repo)}{anchor})"

    return LINK.sub(fix, text)


def chapter_info(nb: dict, colab: str, download: str) -> str:
    """The line under a chapter's title: its links, and when, where and how long its
    outputs were computed."""
    site = nb["metadata"]["cnnlab_site"]
    run = "smoke run (`CNNLAB_FAST=1 CNNLAB_OFFLINE=1`)" if site["mode"] == "smoke" \
        else "full run"  # fmt: skip
    lines = [
        f"[Open in Colab]({colab}) · {{download}}`Download notebook <{download}>`",
        "",
        f"Outputs below: a {run} finished {site['finished']} on a {site['machine']}, "
        f"in {duration(site['seconds'])}.",
    ]
    lines += ["", *site["notes"]] if site["notes"] else []
    return '<div class="cnnlab-chapter-info">\n\n' + "\n".join(lines) + "\n\n</div>\n"


def chapter(executed: Path, source: Path, out: Path, pages: set[str], repo: str) -> int:
    """Write one chapter: the executed notebook with its links fixed and the info line
    after the title. Returns the number of figures in its outputs."""
    nb = clean(json.loads(executed.read_text(encoding="utf-8")))  # the cache keeps raw outputs
    colab = ""
    for cell in nb["cells"]:
        if cell["cell_type"] != "markdown":
            continue
        text = text_of(cell["source"])
        found = COLAB_BADGE.search(text)
        if found:  # the badge's image lives on colab.research.google.com: a link instead
            colab = found.group(1)
            text = COLAB_BADGE.sub("", text)
        cell["source"] = _fix_links(text, "notebooks", pages, repo)
    info = chapter_info(nb, colab, f"../downloads/{source.name}")
    nb["cells"].insert(1, {"cell_type": "markdown", "metadata": {}, "source": info})
    (out / "notebooks").mkdir(parents=True, exist_ok=True)
    (out / "notebooks" / source.name).write_text(json.dumps(nb, indent=1), encoding="utf-8")
    return sum("image/png" in o.get("data", {}) for c in nb["cells"] for o in c.get("outputs", []))


def api_pages(out: Path) -> list[str]:
    """One page per public ``cnnlab`` module (autodoc reads its docstrings); their names."""
    import cnnlab

    names = sorted(
        m.name for m in pkgutil.walk_packages(cnnlab.__path__, "cnnlab.")
        if not any(part.startswith("_") for part in m.name.split("."))
    )  # fmt: skip
    (out / "api").mkdir(parents=True, exist_ok=True)
    for name in names:
        (out / "api" / f"{name}.md").write_text(
            f"# `{name}`\n\n```{{eval-rst}}\n.. automodule:: {name}\n   :ignore-module-all:\n```\n",
            encoding="utf-8",
        )
    toc = "\n".join(names)
    (out / "api" / "index.md").write_text(
        "# API reference\n\nOne page per module of the `cnnlab` package, generated from its "
        "docstrings. The README's table says which module does what.\n\n"
        f"```{{toctree}}\n:maxdepth: 1\n\n{toc}\n```\n",
        encoding="utf-8",
    )
    return names


def assemble(executed: dict[Path, Path], out: Path) -> dict[str, dict[str, int]]:
    """Fill ``out`` with the site's sources. Returns the figures each chapter's page must
    show (by page) and the counts of chapters, figures and API pages."""
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    docs = Path(__file__).resolve().parent
    shutil.copy(docs / "conf.py", out / "conf.py")
    shutil.copytree(docs / "_static", out / "_static")
    repo = repository()
    pages = {f"notebooks/{p.name}" for p in executed} | {"README.md", "notebooks/GLOSSARY.md"}
    figures = {}
    for source, done in executed.items():
        figures[f"notebooks/{source.stem}.html"] = chapter(done, source, out, pages, repo)
        (out / "downloads").mkdir(exist_ok=True)
        shutil.copy(source, out / "downloads" / source.name)
    glossary = (NOTEBOOKS / "GLOSSARY.md").read_text(encoding="utf-8")
    (out / "notebooks" / "GLOSSARY.md").write_text(
        _fix_links(glossary, "notebooks", pages, repo), encoding="utf-8"
    )
    readme = _fix_links((ROOT / "README.md").read_text(encoding="utf-8"), ".", pages, repo)
    chapters = "\n".join(f"notebooks/{p.stem}" for p in executed)
    api = api_pages(out)
    readme += (
        f"\n```{{toctree}}\n:hidden:\n:caption: Chapters\n\n{chapters}\n```\n"
        "\n```{toctree}\n:hidden:\n:caption: Reference\n\nnotebooks/GLOSSARY\napi/index\n```\n"
    )
    (out / "index.md").write_text(readme, encoding="utf-8")
    counts = {"chapters": len(executed), "figures": sum(figures.values()), "API pages": len(api)}
    return {"figures": figures, "counts": counts}

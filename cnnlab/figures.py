"""Measured figures: one home for every number the course reports.

Run times, accuracies and benchmark tables are measured by a command on a machine on a
date, and they drift when the code changes. Each lives once, in ``measured.json`` beside
this module, with its date, its machine and the command that produced it. The README's
tables and every notebook's run-time line are rendered from it
(``python .ci/sync_figures.py``), notebooks print them with :func:`figure_table`, and
``tests/test_figures.py`` fails when a copy disagrees.

Example:
    >>> print(figure_table("distillation"))  # doctest: +SKIP
"""

from __future__ import annotations

import json
import platform
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path

from .settings import cpu_has_bf16


@dataclass(frozen=True)
class Figure:
    """One measured table: what it shows, when, where and how it was measured."""

    name: str
    title: str
    date: str
    machine: str
    command: str
    columns: list[str]
    rows: list[list[str]]
    note: str = ""
    # For figures that have them: each recipe's (seconds, accuracy) points after every
    # epoch, the last one the final evaluation (cnnlab.plots.plot_time_to_accuracy).
    curves: dict[str, list[list[float]]] = field(default_factory=dict)

    def caption(self) -> str:
        return f"Measured on {self.date} on {self.machine}, with `{self.command}`."

    def markdown(self) -> str:
        """The table in Markdown, with its caption (and note) under it."""
        lines = ["| " + " | ".join(self.columns) + " |",
                 "|" + "---|" * len(self.columns)]  # fmt: skip
        lines += ["| " + " | ".join(row) + " |" for row in self.rows]
        text = "\n".join(lines) + f"\n\n*{self.caption()}*"
        return text + (f" {self.note}" if self.note else "")

    def text(self) -> str:
        """The table as aligned plain text, for a notebook's output."""
        table = [self.columns, *self.rows]
        widths = [max(len(str(r[i])) for r in table) for i in range(len(self.columns))]
        lines = ["  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True))
                 for row in table]  # fmt: skip
        return "\n".join([self.title, *lines, self.caption()] + ([self.note] if self.note else []))


@cache
def _all() -> dict[str, dict]:
    text = resources.files("cnnlab").joinpath("measured.json").read_text(encoding="utf-8")
    return json.loads(text)


def figure(name: str) -> Figure:
    """The measured figure called ``name`` (see ``names()``).

    Example:
        >>> figure("notebook_times").columns[:2]
        ['notebook', 'full run']
    """
    entries = _all()
    if name not in entries:
        raise KeyError(f"no measured figure {name!r}; known: {', '.join(entries)}")
    return Figure(name=name, **entries[name])


def names() -> list[str]:
    """Every measured figure's name.

    Example:
        >>> "notebook_times" in names()
        True
    """
    return list(_all())


def figure_table(name: str) -> str:
    """A measured table as text, with when, where and how it was measured.

    Example:
        >>> figure_table("notebook_times").splitlines()[0]
        'Notebook run times'
    """
    return figure(name).text()


def runtime_line(notebook: str) -> str:
    """The run-time sentence of a notebook's header (``notebook`` is its number, "02").

    Example:
        >>> runtime_line("00").startswith("*Run time: ")
        True
    """
    times = figure("notebook_times")
    row = next((r for r in times.rows if r[0] == notebook), None)
    if row is None:
        return "*Run time: not measured yet.*"
    full, smoke, note = row[1], row[2], row[3]
    if note.startswith("on 20"):  # a row measured on another day says where and when itself
        when, extra = note, ""
    else:
        when, extra = f"on {times.date} on {times.machine}", f" ({note})" if note else ""
    return (f"*Run time: {full} for a full run{extra}, {smoke} for the smoke run "
            f"(`CNNLAB_FAST=1`), measured {when}; yours will differ, and the notebook prints "
            "its own timings.*")  # fmt: skip


__all__ = ["Figure", "figure", "figure_table", "names", "runtime_line"]


def cpu_name() -> str:
    """The CPU's model name and its widest vector instructions (they change the speed about
    3x between the machines the course is measured on), as every figure's machine line
    names it.

    Example:
        >>> cpu_name()  # doctest: +SKIP
        'AMD EPYC 7B13 (AVX2)'
    """
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or platform.machine()
    model = next((line.split(":", 1)[1].strip() for line in info.splitlines()
                  if line.startswith("model name")), platform.machine())  # fmt: skip
    flags = next((line.split(":", 1)[1].split() for line in info.splitlines()
                  if line.startswith("flags")), [])  # fmt: skip
    vector = "AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else "no AVX2"
    # ", bf16" exactly when precision="auto" picks bfloat16 on this CPU (the same check)
    return f"{model} ({vector}{', bf16' if cpu_has_bf16() else ''})"


def duration(seconds: float) -> str:
    """A run time as the figures write it: seconds under two minutes, then minutes.

    Example:
        >>> duration(95), duration(373), duration(3286)
        ('95 s', '6.2 min', '55 min')
    """
    if seconds < 120:
        return f"{seconds:.0f} s"
    minutes = seconds / 60
    return f"{minutes:.1f} min" if minutes < 10 else f"{minutes:.0f} min"

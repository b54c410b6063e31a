"""Checked exercises: each notebook's exercises as objects with ``check(answer)``,
``hint()`` and ``solution()``, and :func:`progress` over all of them.

In a notebook::

    from cnnlab.exercises import ex01
    ex01.q1.check(my_shapes)   # what is right, or what is wrong and why
    ex01.q1.hint()             # a nudge
    ex01.q1.solution()         # an answer

``check`` runs your answer (a number, a function, a tensor, a model, a transform) on the
CPU in seconds. A correct answer is recorded in ``.cnnlab-progress.json`` in the working
folder, which :func:`progress` reads; nothing is sent anywhere.
"""

from __future__ import annotations

from . import ex01, ex02, ex03, ex04, ex05, ex06, ex07, ex08, ex09, ex10
from .base import PROGRESS_FILE, Exercise, Result, solved

__all__ = ["ALL", "PROGRESS_FILE", "TITLES", "Exercise", "Result", "progress"]

TITLES = {
    "01": "CNN basics", "02": "Training on CIFAR-10", "03": "Transfer learning",
    "04": "Fine-tuning", "05": "Debugging", "06": "Saving and deploying",
    "07": "Training fast", "08": "Your own photos", "09": "What the network looks at",
    "10": "Many GPUs and machines",
}  # fmt: skip
ALL = {module.__name__[-2:]: module.EXERCISES
       for module in (ex01, ex02, ex03, ex04, ex05, ex06, ex07, ex08, ex09, ex10)}  # fmt: skip


def progress() -> None:
    """Print which checked exercises of which notebooks you have solved (read from
    ``.cnnlab-progress.json`` in the working folder, which ``check`` writes; it never
    leaves your machine, and deleting it starts again).

    Example:
        >>> progress()  # doctest: +SKIP
        01 CNN basics                     2 of 2   ✓ 1  ✓ 2
    """
    done = solved()
    for notebook, items in ALL.items():
        right = set(done.get(notebook, [])) & {q.number for q in items}
        marks = "  ".join(f"{'✓' if q.number in right else '·'} {q.number}" for q in items)
        print(f"{notebook} {TITLES[notebook]:<30} {len(right)} of {len(items)}   {marks}")

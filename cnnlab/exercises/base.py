"""What every checked exercise shares: :class:`Exercise` (``check``, ``hint``,
``solution``), the verdict a check returns (:class:`Result`), how a learner's own
exception is reported (:func:`call`), and the progress file (:func:`solved`)."""

from __future__ import annotations

import dis
import json
import linecache
import os
import sysconfig
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

__all__ = ["PROGRESS_FILE", "Exercise", "LearnerError", "Result", "call", "model_device", "solved",
           "wrong"]  # fmt: skip

PROGRESS_FILE = ".cnnlab-progress.json"  # in the working folder; never sent anywhere
_PACKAGE = str(Path(__file__).resolve().parents[1])
_LIBRARIES = tuple({os.path.dirname(os.__file__), sysconfig.get_paths()["purelib"],
                    sysconfig.get_paths()["platlib"]})  # fmt: skip


def _in_library(path: str) -> bool:
    """A file of cnnlab, the standard library or an installed package (site-packages here,
    dist-packages on Colab and Debian), not the learner's own code."""
    parts = Path(path).parts
    return (path.startswith((_PACKAGE, *_LIBRARIES))
            or "site-packages" in parts or "dist-packages" in parts)  # fmt: skip


@dataclass(frozen=True)
class Result:
    """A check's verdict: ``correct`` and the message the learner reads."""

    correct: bool
    message: str
    answered: bool = True


class LearnerError(Exception):
    """The learner's code raised, or returned something unusable: the message says which
    line and what to do."""


def model_device(model) -> torch.device:
    """Where the learner's model lives (a GPU on Colab): the check's inputs go there.

    Example:
        >>> model_device(torch.nn.Linear(2, 2))
        device(type='cpu')
    """
    first = next(iter(model.parameters()), None)
    return first.device if first is not None else torch.device("cpu")


def wrong(message: str) -> Result:
    """A specific diagnosis of a wrong answer.

    Example:
        >>> wrong("the padding is missing").correct
        False
    """
    return Result(False, message)


def _learner_frame(tb) -> traceback.FrameSummary | None:
    """The innermost frame of the learner's own code (a notebook cell or their file), not
    of cnnlab, PyTorch or the standard library."""
    mine = None
    for frame in traceback.extract_tb(tb):
        if frame.filename.startswith("<"):  # code typed in a cell, or exec'd
            mine = frame
        elif not _in_library(str(Path(frame.filename).resolve())):
            mine = frame
    return mine


def call(function: Callable, *args, what: str = "your function", **kwargs) -> Any:
    """Run the learner's ``function``; if it raises, raise :class:`LearnerError` that
    reports *their* exception and *their* line, not a traceback through cnnlab.

    Example:
        >>> call(lambda x: 1 / x, 0)
        Traceback (most recent call last):
        ...
        cnnlab.exercises.base.LearnerError: your function raised ZeroDivisionError: division by zero ...
    """
    try:
        return function(*args, **kwargs)
    except Exception as error:  # the learner's error, whatever it is
        frame = _learner_frame(error.__traceback__)
        where = ""
        if frame is not None:
            line = frame.line or linecache.getline(frame.filename, frame.lineno).strip()
            where = f"\n  in your code, line {frame.lineno}" + (f": {line}" if line else "")
        raise LearnerError(
            f"{what} raised {type(error).__name__}: {error} (this is an error in the answer, "
            f"not in the check: fix it and run the check again){where}"
        ) from None


_STUB_OPS = {"RESUME", "NOP", "LOAD_CONST", "RETURN_CONST", "RETURN_VALUE", "POP_TOP"}


def _is_stub(answer: Any) -> bool:
    """A function whose body is still the notebook's ``...`` (or ``pass``): not answered."""
    code = getattr(answer, "__code__", None)
    if code is None:
        return False
    ops = {instruction.opname for instruction in dis.get_instructions(code)}
    return ops <= _STUB_OPS and code.co_consts[-1:] in ((None,), (Ellipsis,)) and not code.co_names


@dataclass
class Exercise:
    """A checked exercise: ``check(answer)`` prints what is right or what is wrong and why,
    ``hint()`` gives a nudge, ``solution()`` shows an answer. The answer ``None`` (the
    notebooks' placeholder) is "not answered yet", never an error.

    Example:
        >>> q = Exercise("99", 1, "two plus two", lambda a: Result(a == 4, "yes" if a == 4 else "no"),
        ...              hint_text="add", solution_code="4")
        >>> q.evaluate(None).answered, q.evaluate(4).correct
        (False, True)
    """

    notebook: str
    number: int
    title: str
    checker: Callable[[Any], Result] = field(repr=False)
    hint_text: str = ""
    solution_code: str = ""

    @property
    def name(self) -> str:
        return f"exercise {self.notebook}.{self.number}, {self.title}"

    def evaluate(self, answer: Any) -> Result:
        """The verdict on ``answer``, without printing or recording it (tests use this)."""
        if answer is None or _is_stub(answer):
            return Result(False, "replace None with your answer, then run the cell again",
                          answered=False)  # fmt: skip
        try:
            return self.checker(answer)
        except LearnerError as error:
            return Result(False, str(error))

    def check(self, answer: Any = None) -> None:
        """Check ``answer`` and print the verdict; a correct answer is recorded in
        ``.cnnlab-progress.json`` in the working folder (see :func:`progress`)."""
        result = self.evaluate(answer)
        if result.correct:
            mark = "✓ Correct"
            _record(self.notebook, self.number)
        else:
            mark = "✗ Not yet" if result.answered else "· Not answered yet"
        print(f"{mark} ({self.name}): {result.message}")

    def hint(self) -> None:
        """Print a nudge towards the answer."""
        print(f"Hint ({self.name}): {self.hint_text}")

    def solution(self) -> None:
        """Print an answer (the notebook's hidden solution has the same code)."""
        print(f"A solution to {self.name}:\n\n{self.solution_code.strip()}")


def _progress_path() -> Path:
    return Path.cwd() / PROGRESS_FILE


def solved() -> dict[str, list[int]]:
    """The exercises checked correct so far, by notebook, from ``.cnnlab-progress.json``
    in the working folder (empty when there is none, or when it is damaged).

    Example:
        >>> isinstance(solved(), dict)
        True
    """
    try:
        return json.loads(_progress_path().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}  # no file yet, or a damaged one: start again rather than fail a check


def _record(notebook: str, number: int) -> None:
    done = solved()
    done[notebook] = sorted(set(done.get(notebook, [])) | {number})
    try:
        _progress_path().write_text(json.dumps(done, indent=1), encoding="utf-8")
    except OSError:
        pass  # a read-only folder: the check itself still counts

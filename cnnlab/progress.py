"""Progress bars over data loaders that start each pass exactly once.

``tqdm.auto`` (the notebook-aware bar) calls ``iter()`` on what it wraps when it is
created, and again when the loop starts. For a ``DataLoader`` every ``iter()`` is a new
pass: it draws a seed from the loader's generator and, with worker processes that are
not persistent, starts a new set of workers. Handing tqdm an iterator instead of the
loader makes the loop start one pass, as a plain ``for`` loop would.

``CNNLAB_PROGRESS=text`` asks for tqdm's text bar even in a notebook: the course's website
shows executed notebooks, and a widget bar has no static form on a web page.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from typing import TypeVar

if os.environ.get("CNNLAB_PROGRESS") == "text":
    from tqdm.std import tqdm
else:
    from tqdm.auto import tqdm

T = TypeVar("T")


def progress(iterable: Iterable[T], **options) -> Iterator[T]:
    """``tqdm(iterable, **options)`` that calls ``iter(iterable)`` once.

    The total comes from ``len(iterable)`` when it has one.

    Example:
        >>> for batch in progress([1, 2, 3], desc="demo", disable=True):
        ...     pass
        >>> batch
        3
    """
    total = len(iterable) if hasattr(iterable, "__len__") else None  # type: ignore[arg-type]
    return tqdm(iter(iterable), total=options.pop("total", total), **options)

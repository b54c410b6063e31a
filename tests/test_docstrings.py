"""Every docstring example in `cnnlab` runs and prints what it says (doctest).

Examples may use the names a notebook would have imported: torch, nn, numpy and the
public names of the cnnlab modules."""

from __future__ import annotations

import doctest
import importlib
import os
import pkgutil

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

import cnnlab

MODULES = sorted(m.name for m in pkgutil.walk_packages(cnnlab.__path__, "cnnlab."))


def _globals() -> dict:
    names = {"torch": torch, "nn": nn, "np": np, "Image": Image}
    for module_name in ("cnnlab.data", "cnnlab.models", "cnnlab.engine", "cnnlab.settings"):
        module = importlib.import_module(module_name)
        names |= {k: getattr(module, k) for k in dir(module) if not k.startswith("_")}
    return names


@pytest.mark.parametrize("module_name", MODULES)
def test_docstring_examples_run(module_name):
    module = importlib.import_module(module_name)
    flags = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
    saved = dict(os.environ)  # some examples set the cnnlab switches: put them back
    try:
        result = doctest.testmod(module, extraglobs=_globals(), optionflags=flags, report=True)
    finally:
        os.environ.clear()
        os.environ.update(saved)
    assert result.failed == 0, f"{result.failed} docstring example(s) failed in {module_name}"

"""Numbers and APIs that the notebooks' prose states, checked against the code (issue 22's
wrong statements: each one that involves a number or an API has its check here or beside
the code it is about)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import torch
from torch import nn
from torchvision import models

from cnnlab.engine.options import _LEGACY
from cnnlab.models import count_parameters

NOTEBOOKS = sorted((Path(__file__).parents[1] / "notebooks").glob("*.ipynb"))


def test_the_seed_pipeline_that_freezes_nothing_trains_about_58_million_weights():
    """Notebook 04: the source tutorial's ResNet-152 (a new 10-class head), not 11 million."""
    with torch.device("meta"):
        net = models.resnet152(num_classes=10)
    assert round(count_parameters(net).trainable / 1e6) == 58
    with torch.device("meta"):
        assert round(count_parameters(models.resnet18()).total / 1e6) == 12  # "11.7 M"


def test_resnet_layer_counts_include_their_1x1_shortcut_convolutions():
    """Notebook 01 prints 21 and 54 layers with weights, and says 3 and 4 are shortcuts."""
    for name, layers, shortcuts in (("resnet18", 21, 3), ("resnet50", 54, 4)):
        with torch.device("meta"):
            net = getattr(models, name)()
        assert sum(isinstance(m, (nn.Conv2d, nn.Linear)) for m in net.modules()) == layers
        assert sum(isinstance(m, nn.Conv2d) and "downsample" in n
                   for n, m in net.named_modules()) == shortcuts  # fmt: skip


def test_no_notebook_teaches_an_argument_fit_no_longer_takes():
    """fit(..., checkpoint=..., resume=True) is gone (fit refuses it): the course must
    not teach it, in prose or in code."""
    removed = re.compile(r"\bfit\([^()]*\b(" + "|".join(_LEGACY) + r")\s*=")
    for path in NOTEBOOKS:
        for i, cell in enumerate(json.loads(path.read_text())["cells"]):
            hit = removed.search("".join(cell["source"]))
            assert hit is None, f"{path.name} cell {i}: {hit.group(0)}"

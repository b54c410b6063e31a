"""Checked exercises of notebook 06 (saving and deploying): loading weights safely, and
a checkpoint that can resume."""

from __future__ import annotations

import io
import tempfile
from pathlib import Path
from unittest import mock

import torch
from torch import nn

from .base import Exercise, Result, call, wrong


def _saved_model(folder: Path) -> tuple[Path, nn.Module]:
    from ..models import SimpleCNN  # noqa: PLC0415

    torch.manual_seed(0)
    model = SimpleCNN(dropout=0.5)
    path = folder / "simplecnn_weights.pt"
    torch.save(model.state_dict(), path)
    return path, model


def _check_load(answer) -> Result:
    if not callable(answer):
        return wrong("answer with your function itself (load_model), not its result")
    with tempfile.TemporaryDirectory() as folder:
        path, original = _saved_model(Path(folder))
        real_load, calls = torch.load, []

        def spy(*args, **kwargs):
            calls.append(kwargs)
            return real_load(*args, **kwargs)

        with mock.patch("torch.load", spy):
            loaded = call(answer, path, what="your load_model")
    if isinstance(loaded, dict):
        return wrong("load_model returned the state_dict itself: build SimpleCNN() and call "
                     "load_state_dict(...) on it, then return the model")  # fmt: skip
    if not isinstance(loaded, nn.Module):
        return wrong(f"load_model returned a {type(loaded).__name__}; return the model")
    if not calls:
        return wrong("load the file with torch.load(path, weights_only=True)")
    if calls[0].get("weights_only") is not True:
        return wrong("pass weights_only=True to torch.load: without it, PyTorch before 2.6 "
                     "unpickles whatever the file holds, which can run code")  # fmt: skip
    for (name, want), got in zip(original.state_dict().items(), loaded.state_dict().values(), strict=False):  # fmt: skip
        if not torch.equal(want, got.cpu()):
            return wrong(f"the model's {name} differs from the file: load_state_dict the "
                         "loaded dictionary into the model you return")  # fmt: skip
    if loaded.training:
        return wrong("the model is in training mode: call model.eval() before predicting, or "
                     "dropout changes every answer")  # fmt: skip
    return Result(True, "weights_only=True, the weights in place, eval mode: a model ready to "
                        "predict, loaded without trusting the file's code.")  # fmt: skip


def _check_checkpoint(answer) -> Result:
    if not callable(answer):
        return wrong("answer with your function itself (make_checkpoint), not its result")
    from ..models import SimpleCNN  # noqa: PLC0415

    model = SimpleCNN()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    model(torch.rand(2, 3, 32, 32)).sum().backward()
    optimizer.step()  # so that Adam has state worth saving
    checkpoint = call(answer, model, optimizer, 7, what="your make_checkpoint")
    if not isinstance(checkpoint, dict):
        return wrong(f"make_checkpoint returned a {type(checkpoint).__name__}; return a dict")
    if any(isinstance(v, (nn.Module, torch.optim.Optimizer)) for v in checkpoint.values()):
        return wrong("the checkpoint holds the model or optimizer object itself: save their "
                     "state_dict() instead, which loads with weights_only=True")  # fmt: skip
    buffer = io.BytesIO()
    torch.save(checkpoint, buffer)
    buffer.seek(0)
    try:
        loaded = torch.load(buffer, weights_only=True)
    except Exception:  # noqa: BLE001 (any unpickling refusal means the same thing here)
        return wrong("the checkpoint does not load with weights_only=True: keep to tensors, "
                     "numbers, strings, lists and dicts (state_dicts are all of these)")  # fmt: skip
    values = list(loaded.values())
    weights = model.state_dict()
    if not any(isinstance(v, dict) and v.keys() == weights.keys() for v in values):
        return wrong("the model's state_dict is missing: add 'model': model.state_dict()")
    if not any(isinstance(v, dict) and {"state", "param_groups"} <= v.keys() for v in values):
        return wrong("the optimizer's state is missing: Adam's running averages are needed "
                     "to continue exactly; add 'optimizer': optimizer.state_dict()")  # fmt: skip
    if 7 not in [v for v in values if isinstance(v, int)]:
        return wrong("the epoch is missing: add 'epoch': epoch, to know where to continue")
    return Result(True, "weights, optimizer state and epoch, all loadable with "
                        "weights_only=True. ModelCheckpoint adds the scheduler, random states "
                        "and History.")  # fmt: skip


q1 = Exercise(
    "06", 1, "load weights safely", _check_load,
    hint_text="Build the model, then "
    "model.load_state_dict(torch.load(path, weights_only=True)), then model.eval().",
    solution_code="""import torch

from cnnlab.models import SimpleCNN

def load_model(path):
    model = SimpleCNN(dropout=0.5)
    model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    return model.eval()""",
)  # fmt: skip
q2 = Exercise(
    "06", 2, "a checkpoint that can resume", _check_checkpoint,
    hint_text="A dict of state_dicts and plain values: the model's and the optimizer's "
    "state_dict(), and the epoch.",
    solution_code="""def make_checkpoint(model, optimizer, epoch):
    return {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "epoch": epoch}""",
)  # fmt: skip
EXERCISES = [q1, q2]

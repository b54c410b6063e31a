"""Checked exercises of notebook 05 (debugging): a training step without its classic
bugs, and a callback that stops a diverging run."""

from __future__ import annotations

import copy
import warnings

import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, TensorDataset

from ..settings import plural
from .base import Exercise, LearnerError, Result, call, wrong


def _setup():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 3))
    x, y = torch.randn(8, 3, 2, 2), torch.randint(0, 3, (8,))
    return model, x, y


def _reference(variant: str) -> list[torch.Tensor]:
    """The weights after two steps of SGD done right, or with one classic bug."""
    model, x, y = _setup()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    for _ in range(2):
        logits = model(x)
        if variant == "softmax":
            logits = logits.softmax(1)
        loss = F.cross_entropy(logits, y)
        if variant != "no_zero_grad":
            optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return [p.detach() for p in model.parameters()]


def _same(a: list[torch.Tensor], b: list[torch.Tensor]) -> bool:
    return all(torch.allclose(p, q, atol=1e-5) for p, q in zip(a, b, strict=True))


def _check_step(answer) -> Result:
    if not callable(answer):
        return wrong("answer with your function itself (train_step), not its result")
    model, x, y = _setup()
    start = [p.detach().clone() for p in model.parameters()]
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    losses = [call(answer, model, optimizer, x, y, what="your train_step") for _ in range(2)]
    after = [p.detach() for p in model.parameters()]
    if _same(after, start):
        return wrong("the weights did not change: call optimizer.step() after loss.backward()")
    if _same(after, _reference("no_zero_grad")):
        return wrong("the second step used the first step's gradients too: without "
                     "optimizer.zero_grad() gradients add up in .grad")  # fmt: skip
    if _same(after, _reference("softmax")):
        return wrong("softmax before cross_entropy: the loss applies log-softmax itself, so "
                     "the model's raw logits must go in (a double softmax learns slowly)")  # fmt: skip
    if not _same(after, _reference("right")):
        return wrong("the weights after two steps differ from a correct step: forward, loss on "
                     "the logits, zero_grad, backward, step")  # fmt: skip
    if any(isinstance(v, torch.Tensor) and v.requires_grad for v in losses):
        return wrong("the step is right, but it returns the loss tensor with its graph: "
                     "return loss.item(), or every step's graph stays in memory")  # fmt: skip
    if not all(isinstance(v, (float, int)) or isinstance(v, torch.Tensor) for v in losses):
        return wrong("return the loss as a number (loss.item())")
    return Result(True, "the five steps in order, and the loss returned as a number.")


def _run(callback, lr: float) -> int:
    """Epochs that fit ran (of 3) at rate ``lr``: a rate of 1e30 overflows the weights to
    inf within the first epoch, and the loss becomes nan."""
    from ..engine import fit  # noqa: PLC0415 (imported when checked: no cycle)

    torch.manual_seed(0)
    data = TensorDataset(torch.randn(64, 3, 4, 4) * 1e5, torch.randint(0, 3, (64,)))
    model = nn.Sequential(nn.Flatten(), nn.Linear(48, 3))
    with warnings.catch_warnings():  # fit's own "the loss diverged" warning
        warnings.simplefilter("ignore")
        history = fit(model, DataLoader(data, batch_size=16), epochs=3, device="cpu",
                      optimizer=torch.optim.SGD(model.parameters(), lr=lr), progress=False,
                      callbacks=[copy.deepcopy(callback)])  # fmt: skip
    return len(history.epoch)


def _check_callback(answer) -> Result:
    from ..callbacks import Callback  # noqa: PLC0415

    if isinstance(answer, type):
        return wrong("that is the class; answer with an instance: StopOnNaN()")
    if not isinstance(answer, Callback):
        return wrong("answer with a Callback instance (a subclass of cnnlab.callbacks.Callback)")
    try:
        diverging = call(_run, answer, 1e30, what="fit with your callback")
        healthy = call(_run, answer, 1e-2, what="fit with your callback")
    except LearnerError as error:
        if "nan" in str(error).lower() or "finite" in str(error).lower():
            return wrong("your callback raised an exception to stop: that ends with a "
                         "traceback and no History; set state.stop_training = True instead")  # fmt: skip
        raise
    if diverging == 3:
        return wrong("the diverging run went on for all 3 epochs: in on_epoch_end, test "
                     "math.isfinite(state.history.train_loss[-1]) and set "
                     "state.stop_training = True when it is not")  # fmt: skip
    if healthy < 3:
        return wrong("it also stopped a healthy run: stop on a loss that is not finite "
                     "(nan or inf), not on a loss that is merely high")  # fmt: skip
    return Result(True, f"the diverging run stopped after {plural(diverging, 'epoch')}, the "
                        "healthy one ran to the end.")  # fmt: skip


q1 = Exercise(
    "05", 1, "a training step without its classic bugs", _check_step,
    hint_text="Forward on the logits, cross_entropy (no softmax before it), zero_grad, "
    "backward, step; return loss.item().",
    solution_code="""import torch.nn.functional as F

def train_step(model, optimizer, x, y):
    loss = F.cross_entropy(model(x), y)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return loss.item()""",
)  # fmt: skip
q2 = Exercise(
    "05", 2, "a callback that stops a diverging run", _check_callback,
    hint_text="Subclass cnnlab.callbacks.Callback and define on_epoch_end(self, state): "
    "state.history.train_loss[-1] is the epoch's loss; state.stop_training = True stops fit.",
    solution_code="""import math

from cnnlab.callbacks import Callback

class StopOnNaN(Callback):
    def on_epoch_end(self, state):
        if not math.isfinite(state.history.train_loss[-1]):
            print(f"epoch {state.epoch}: the loss is {state.history.train_loss[-1]}, stopping")
            state.stop_training = True

my_callback = StopOnNaN()""",
)  # fmt: skip
EXERCISES = [q1, q2]

"""One row of the combination test (tests/combinations.py): a short FastNet-free run
on the stand-in, shrunk to 16 px (a float16 convolution's backward pass is emulated on a
CPU, 20 to 100 times slower than float32: pixels are what it costs), with a precision,
some of the callbacks, and optionally an interruption
and a resume. Run in-process by tests/test_combinations.py for one process, and by
ddp_run.py under torchrun for two (tests/test_distributed.py): the same code on both
paths."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from cnnlab import distributed, seed_everything
from cnnlab.callbacks import (
    EarlyStopping,
    GradualUnfreezing,
    LambdaCallback,
    Lookahead,
    ModelCheckpoint,
    ProgressiveResizing,
)
from cnnlab.data import DecodedImages, StandInCIFAR10, TensorLoader, decode_images
from cnnlab.engine import evaluate, fit
from cnnlab.models import SmallResNet

EPOCHS, STOP_AFTER = 4, 2


@dataclass(frozen=True)
class Row:
    precision: str  # fp32, bf16 or fp16 (with a GradScaler), all run on the CPU
    lookahead: bool
    early_stopping: bool
    gradual: bool
    resizing: bool
    resume: bool  # interrupted after epoch 2, then resumed in a "new session"
    accumulate: bool  # gradient accumulation: an optimizer step every 2 batches
    ddp: bool  # two processes under torchrun (gloo)

    def name(self) -> str:
        on = [k for k, v in asdict(self).items() if v is True]
        return "-".join([self.precision, *on]) or self.precision


class Interrupt(Exception):
    """Ctrl-C stand-in, raised after the epoch's checkpoint was written."""


def _standin_16px(train: bool, size: int) -> DecodedImages:
    data = decode_images(StandInCIFAR10(train=train, size=size), cache=False)
    images = torch.nn.functional.avg_pool2d(data.images.float(), 2).round().to(torch.uint8)
    return DecodedImages(images, data.labels, data.classes)


def _run(row: Row, path: Path, *, resume: bool, stop_after: int | None, seed: int):
    seed_everything(seed + distributed.rank())  # each process its own random state
    data = _standin_16px(train=True, size=128)
    train = TensorLoader(data, 16, shuffle=True, augment=True, padding=2, seed=0, drop_last=True)
    val = TensorLoader(_standin_16px(train=False, size=64), 32)
    model = SmallResNet(width=4)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    callbacks = [ModelCheckpoint(path, resume=resume, overwrite=not resume)]
    if row.lookahead:
        callbacks.append(Lookahead(every=3))  # 8 (4 accumulating) steps an epoch: mid-cycle
    if row.early_stopping:  # no epoch improves by 1.0: stops after epoch 3
        callbacks.append(EarlyStopping("val_acc", patience=2, min_delta=1.0))
    if row.gradual:
        callbacks.append(GradualUnfreezing(model, every=1))
    if row.resizing:
        callbacks.append(ProgressiveResizing(train, size=12, epochs=2))

    def interrupt(state):
        if state.epoch == stop_after:
            raise Interrupt

    stopper = LambdaCallback(on_epoch_end=interrupt)
    stopper.order = 200  # after ModelCheckpoint (100) has saved the epoch
    callbacks.append(stopper)
    history = fit(model, train, val, epochs=EPOCHS, optimizer=optimizer, device="cpu",
                  precision=row.precision, progress=False, callbacks=callbacks,
                  accumulate=2 if row.accumulate else 1)  # fmt: skip
    after = torch.rand(3)  # this process's generator after training (restored per process)
    return history, model, val, after


def run_row(row: Row, folder: Path) -> dict:
    """Run ``row`` (straight, and interrupted + resumed when ``row.resume``) and return
    what the test compares, as plain values."""
    folder.mkdir(parents=True, exist_ok=True)
    straight, model, val, after = _run(row, folder / "straight.pt", resume=False,
                                       stop_after=None, seed=0)  # fmt: skip
    saved = torch.load(folder / "straight.pt", weights_only=True)["model"]
    # Under DDP the parameters are identical on every process; BatchNorm's running
    # statistics are each process's own after the last batch, and rank 0 saves its own.
    compared = (
        model.state_dict() if distributed.is_main_process() else dict(model.named_parameters())
    )
    out = {
        "parameters": sorted(name for name, _ in model.named_parameters()),
        "history": straight.as_dict(),
        "weights": {k: v.tolist() for k, v in model.state_dict().items()},
        "checkpoint_matches_model": all(torch.equal(saved[k], v) for k, v in compared.items()),
        "last_val_acc": straight.val_acc[-1],
        "val_acc_of_returned_model": evaluate(model, val, device="cpu", precision=row.precision).accuracy,
        "rng_after": after.tolist(),
    }  # fmt: skip
    if row.resume:
        try:
            _run(row, folder / "run.pt", resume=False, stop_after=STOP_AFTER, seed=0)
            raise AssertionError("the interruption did not happen")
        except Interrupt:
            pass
        resumed, model, _, after = _run(row, folder / "run.pt", resume=True, stop_after=None,
                                        seed=123)  # fmt: skip
        out["resumed"] = {
            "history": resumed.as_dict(),
            "weights": {k: v.tolist() for k, v in model.state_dict().items()},
            "rng_after": after.tolist(),
        }
    return out


def write_rows(rows: list[Row], folder: Path) -> None:
    """Run every row and write rank-numbered results (for the torchrun path)."""
    results = {row.name(): run_row(row, folder / row.name()) for row in rows}
    out = folder / f"results-rank{distributed.rank()}.json"
    out.write_text(json.dumps(results))

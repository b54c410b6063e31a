#!/usr/bin/env python3
"""The checks that need a GPU, in one run of a few minutes: what CI (a CPU) cannot show.

Run it first on any machine with a CUDA GPU (a Colab T4 included, see the README's
"Checking a GPU" section). It prints one line per check, ``ok`` or ``FAIL`` with the
reason, and exits with status 1 if any check failed:

- ``fp16 step`` / ``bf16 step``: cnnlab's training loop with float16 + GradScaler (fit's
  default, fused optimizer) and bfloat16 autocast, under
  ``torch.cuda.set_sync_debug_mode("error")`` inside the steps: any read-back from the GPU
  within a step raises (bf16 is skipped below compute capability 8.0, where cnnlab refuses
  it);
- ``fp16 unfused``: the documented exception, GradScaler.step with an unfused optimizer,
  counted (one read per step);
- ``lookahead resume``: a Lookahead run interrupted and resumed on the GPU (the slow
  weights come back from the CPU file onto the GPU);
- ``torchrun 2 on 1 GPU`` / ``torchrun 1 on 1 GPU``: notebook 10's launch with more
  processes than GPUs (all on the CPU with gloo, said once) and with one per GPU (NCCL);
- ``cnnlab train/predict <arch>``: every architecture ``cnnlab train --help`` offers, one
  smoke epoch on the GPU, then a prediction;
- ``explain/export/predict after GPU training``: saliency, Grad-CAM and occlusion on the
  GPU, ONNX and TorchScript exports with parity, Predictor on the GPU.

    python benchmarks/gpu_check.py                  # on a GPU machine
    python benchmarks/gpu_check.py --device cpu     # a rehearsal on the CPU (no sync checks)
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

import torch
from common import ROOT, machine_line

from cnnlab import seed_everything
from cnnlab.callbacks import LambdaCallback, Lookahead, ModelCheckpoint
from cnnlab.data import StandInCIFAR10, TensorLoader, decode_images
from cnnlab.engine import fit, loop
from cnnlab.models import SimpleCNN, SmallResNet
from cnnlab.registry import CNNLAB_MODELS, model_names
from cnnlab.settings import autocast_dtype

RESULTS: list[bool] = []
SMOKE = {"CNNLAB_FAST": "1", "CNNLAB_OFFLINE": "1"}


def check(name: str):
    """Run the decorated function now and print one line: ok (with what it returns) or
    FAIL with the error's last line."""

    def run(function):
        start = time.perf_counter()
        try:
            note = function()
            line = (
                f"ok    {name} ({time.perf_counter() - start:.1f} s){f': {note}' if note else ''}"
            )
            RESULTS.append(True)
        except Exception as error:  # one failed check must not hide the others
            last = traceback.format_exception_only(error)[-1].strip()
            line = f"FAIL  {name}: {last[:300]}"
            RESULTS.append(False)
        print(line, flush=True)
        return function

    return run


def _data(n: int = 256) -> TensorLoader:
    return decode_images(StandInCIFAR10(size=n), cache=False)


@contextlib.contextmanager
def _no_reads_inside_steps(device: torch.device):
    """Sync debug mode "error" from the end of the first step (the epoch's start may read
    once: its order) to the end of the last one: every later batch and step runs under
    it. The epoch's totals (one read, after the last step) are read with it off."""
    if device.type != "cuda":
        yield []
        return
    real = loop._result

    def totals(*args, **kwargs):
        torch.cuda.set_sync_debug_mode(0)
        return real(*args, **kwargs)

    loop._result = totals
    try:
        yield [LambdaCallback(on_step_end=lambda state: torch.cuda.set_sync_debug_mode("error"))]
    finally:
        torch.cuda.set_sync_debug_mode(0)
        loop._result = real


def _steps(device: torch.device, precision: str, optimizer=None) -> str:
    seed_everything(0)
    train = TensorLoader(_data(), 32, shuffle=True, augment=True, seed=0, device=device)
    model = SmallResNet(width=8).to(device)
    warm = fit(
        model,
        train,
        epochs=1,
        device=device,
        precision=precision,
        progress=False,
        optimizer=optimizer,
    )  # fmt: skip  (first epoch: cuDNN's timing runs, allocations)
    with _no_reads_inside_steps(device) as watch:
        history = fit(model, train, epochs=1, device=device, precision=precision,
                      progress=False, optimizer=optimizer, callbacks=watch)  # fmt: skip
    return (
        f"{history.precision[-1]}, loss {warm.train_loss[-1]:.3f} -> {history.train_loss[-1]:.3f}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    device = torch.device(args.device)
    print(machine_line(device))
    if device.type == "cuda":
        print(f"# {torch.cuda.get_device_name(device)}, compute capability "
              f"{'.'.join(map(str, torch.cuda.get_device_capability(device)))}")  # fmt: skip
    else:
        print("# no GPU: a rehearsal of the script; the sync checks need CUDA")
    os.environ.update(SMOKE)

    @check("fp16 step (GradScaler, fused Adam, no read inside a step)")
    def _():
        return _steps(device, "fp16")

    @check("bf16 step (no read inside a step)")
    def _():
        if device.type == "cuda" and torch.cuda.get_device_capability(device)[0] < 8:
            with contextlib.suppress(Exception):
                autocast_dtype(device, "bf16")
            return "skipped: below compute capability 8.0 cnnlab refuses bf16 (tested on the CPU)"
        return _steps(device, "bf16")

    @check("fp16 unfused optimizer (the documented read per step)")
    def _():
        if device.type != "cuda":
            return "skipped: CUDA only"
        model = SmallResNet(width=8).to(device)
        optimizer = torch.optim.Adam(model.parameters(), fused=False)
        torch.cuda.set_sync_debug_mode("warn")
        try:
            import warnings

            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                train = TensorLoader(_data(64), 32, device=device)
                fit(model, train, epochs=1, device=device, precision="fp16", progress=False,
                    optimizer=optimizer)  # fmt: skip
        finally:
            torch.cuda.set_sync_debug_mode(0)
        return f"{sum('synchroniz' in str(w.message) for w in caught)} sync warnings in 2 steps"

    @check("lookahead resume on the GPU")
    def _():
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "last.pt"

            def run(stop: int | None, resume: bool) -> torch.nn.Module:
                seed_everything(0)
                model = SmallResNet(width=8)
                train = TensorLoader(_data(128), 32, shuffle=True, seed=0, device=device)

                def interrupt(state):
                    if state.epoch == stop:
                        raise KeyboardInterrupt

                stopper = LambdaCallback(on_epoch_end=interrupt)
                stopper.order = 200
                fit(model, train, epochs=3, device=device, progress=False,
                    optimizer=torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9),
                    callbacks=[ModelCheckpoint(path, resume=resume, overwrite=not resume),
                               Lookahead(every=3), stopper])  # fmt: skip
                return model

            straight = run(None, resume=False).state_dict()
            path.unlink()
            with contextlib.suppress(KeyboardInterrupt):
                run(1, resume=False)
            resumed = run(None, resume=True).state_dict()
            gap = max(
                (straight[k].float() - resumed[k].float()).abs().max().item() for k in straight
            )
            assert gap < 1e-3, f"resumed weights differ by {gap}"
            return f"max weight difference {gap:.1e}"

    script = ROOT / "tests" / "scripts" / "ddp_run.py"
    for processes in (2, 1):

        @check(f"torchrun {processes} process(es) on this machine (notebook 10's launch)")
        def _(processes=processes):
            with tempfile.TemporaryDirectory() as tmp:
                done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                                       f"--nproc_per_node={processes}", str(script), "--out", tmp,
                                       "--epochs", "1"], capture_output=True, text=True,
                                      env=os.environ | SMOKE, timeout=300)  # fmt: skip
            assert done.returncode == 0, done.stderr.strip().splitlines()[-1:]
            said = [line for line in done.stdout.splitlines() if line.startswith("cnnlab:")]
            return said[0] if said else "no fallback needed"

    with tempfile.TemporaryDirectory() as tmp:
        photos = Path(tmp) / "photos"
        from PIL import Image

        for split in ("train", "test"):
            for name, colour in (("red", (200, 30, 30)), ("blue", (30, 30, 200))):
                (photos / split / name).mkdir(parents=True)
                for i in range(2):
                    Image.new("RGB", (70, 60), colour).save(photos / split / name / f"{i}.png")
        for arch in model_names():

            @check(f"cnnlab train/predict {arch}")
            def _(arch=arch):
                size = "32" if arch in CNNLAB_MODELS else "80" if arch == "inception_v3" else "64"
                out = Path(tmp) / f"{arch}.pt"
                cli = [sys.executable, "-m", "cnnlab.cli"]
                env = (
                    os.environ
                    | SMOKE
                    | ({} if device.type == "cuda" else {"CUDA_VISIBLE_DEVICES": ""})
                )
                for command in (["train", "--folder", str(photos), "--arch", arch, "--epochs", "1",
                                 "--batch-size", "4", "--size", size, "--out", str(out)],
                                ["predict", str(out), str(photos / "test" / "red" / "0.png")]):  # fmt: skip
                    done = subprocess.run(cli + command, capture_output=True, text=True, env=env,
                                          timeout=300)  # fmt: skip
                    assert done.returncode == 0, done.stderr.strip().splitlines()[-1:]
                return done.stdout.strip().splitlines()[-1][-60:]

    @check("explain/export/predict after GPU training")
    def _():
        from cnnlab.explain import grad_cam, occlusion, saliency
        from cnnlab.export import export_onnx, export_torchscript
        from cnnlab.inference import Predictor, Preprocessing

        seed_everything(0)
        model = SimpleCNN()
        train = TensorLoader(
            _data(128), 32, shuffle=True, seed=0, device=device, channels_last=True
        )
        fit(
            model,
            train,
            epochs=1,
            device=device,
            precision="auto",
            channels_last=True,
            progress=False,
        )
        images = next(iter(train))[0][:4]
        maps = [saliency(model, images), grad_cam(model, images, "features.6"),
                occlusion(model, images, window=8, stride=8)]  # fmt: skip
        assert all(m.device.type == device.type and m.shape == (4, 32, 32) for m in maps)
        with tempfile.TemporaryDirectory() as out:
            onnx = export_onnx(model, Path(out) / "m.onnx", images)
            script = export_torchscript(model, Path(out) / "m.ts", images)
        top = Predictor(model, [str(i) for i in range(10)], Preprocessing(32), device=device)
        best = top.predict_batch(images.float().cpu(), k=1)
        assert next(model.parameters()).device.type == device.type  # left where it was
        return f"onnx diff {onnx.max_abs_diff:.1e}, torchscript {script.max_abs_diff:.1e}, top-1 {best[0][0][0]}"

    failed = RESULTS.count(False)
    print(f"{len(RESULTS) - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

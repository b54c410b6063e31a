#!/usr/bin/env python3
"""Serving figures: single-image latency (p50, p99) of eager PyTorch, TorchScript, ONNX
Runtime and int8 ONNX Runtime, quantization's size and accuracy, and the web API's
requests per second under a bounded loopback load.

A model is trained briefly on real CIFAR-10 (the figures need real weights and real
images, not the stand-in), saved as ``cnnlab train`` would save it, exported, quantized,
and served by ``cnnlab serve`` in a separate process on 127.0.0.1. Latency ratios are
against eager PyTorch measured in the same run.

    python benchmarks/bench_serving.py                           # ../shared/data copy
    python benchmarks/bench_serving.py --runs 200 --requests 200 # quicker
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from common import add_data_argument, machine_line, real_cifar10

from cnnlab import seed_everything
from cnnlab.data import (
    CIFAR10_MEAN,
    CIFAR10_STD,
    cifar10_eval_transform,
    cifar10_train_transform,
    load_cifar10,
    make_loader,
    subset,
)
from cnnlab.engine import fit
from cnnlab.export import export_onnx, export_torchscript, onnx_session
from cnnlab.inference import Predictor, Preprocessing, build_model
from cnnlab.quantize import quantize_onnx


def percentiles(seconds: list[float]) -> tuple[float, float]:
    """(p50, p99) in milliseconds."""
    p50, p99 = np.percentile(np.array(seconds) * 1e3, [50, 99])
    return float(p50), float(p99)


def time_calls(fn: Callable[[int], object], runs: int, warmup: int = 20) -> list[float]:
    """Seconds of each of ``runs`` calls ``fn(i)``, after ``warmup`` untimed calls."""
    for i in range(warmup):
        fn(i)
    times = []
    for i in range(runs):
        start = time.perf_counter()
        fn(i)
        times.append(time.perf_counter() - start)
    return times


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def api_load(model_file: Path, images: list[bytes], requests: int, concurrency: int) -> dict:
    """Start ``cnnlab serve`` on loopback, send ``requests`` uploads from ``concurrency``
    client threads, stop it; returns requests/s and per-request latencies."""
    import httpx

    port = free_port()
    cli = Path(sys.executable).with_name("cnnlab")
    server = subprocess.Popen([str(cli), "serve", str(model_file), "--port", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(timeout=30) as client:
            for _ in range(600):  # up to 60 s to start
                try:
                    if client.get(f"{url}/health").status_code == 200:
                        break
                except httpx.TransportError:
                    time.sleep(0.1)
            else:
                raise RuntimeError("cnnlab serve did not start within 60 s")

            def one(i: int) -> float:
                files = {"file": (f"{i}.jpg", images[i % len(images)], "image/jpeg")}
                start = time.perf_counter()
                response = client.post(f"{url}/predict?k=3", files=files)
                response.raise_for_status()
                return time.perf_counter() - start

            for i in range(20):  # warm up
                one(i)
            start = time.perf_counter()
            with ThreadPoolExecutor(concurrency) as pool:
                latencies = list(pool.map(one, range(requests)))
            wall = time.perf_counter() - start
    finally:
        server.terminate()
        server.wait(timeout=30)
    return {"rps": requests / wall, "latencies": latencies, "wall": wall}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_data_argument(parser)
    parser.add_argument("--train-images", type=int, default=10_000)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--runs", type=int, default=500, help="timed single-image calls")
    parser.add_argument("--requests", type=int, default=500, help="API requests under load")
    parser.add_argument("--concurrency", type=int, default=4, help="client threads")
    args = parser.parse_args()
    folder = real_cifar10(args.data)
    print(machine_line("cpu"), flush=True)

    seed_everything(0)
    train = subset(load_cifar10(True, cifar10_train_transform(), folder=folder),
                   args.train_images)  # fmt: skip
    test = load_cifar10(False, cifar10_eval_transform(), folder=folder)
    spec = {"name": "SmallResNet", "kwargs": {"num_classes": 10, "width": 16}}
    model = build_model(spec)
    start = time.perf_counter()
    history = fit(model, make_loader(train, 128, shuffle=True, seed=0, drop_last=True),
                  make_loader(test, 256), epochs=args.epochs, lr=3e-3, device="cpu",
                  progress=False)  # fmt: skip
    print(f"model: SmallResNet(width=16), {args.epochs} epochs on {len(train):,} images, "
          f"{history.val_acc[-1]:.2%} on the {len(test):,} test images, "
          f"{time.perf_counter() - start:.0f} s", flush=True)  # fmt: skip
    model.eval()

    work = Path(tempfile.mkdtemp(prefix="bench_serving_"))
    predictor = Predictor(model, list(test.classes), Preprocessing(32, CIFAR10_MEAN, CIFAR10_STD))
    model_file = predictor.save(work / "model.pt", spec)
    images = torch.stack([test[i][0] for i in range(64)])
    print(export_torchscript(model, work / "model.ts", images[:8]))
    print(export_onnx(model, work / "model.onnx", images[:8]))
    calibration = torch.stack([train[i][0] for i in range(256)])
    for mode in ("static", "dynamic"):
        print(quantize_onnx(work / "model.onnx", work / f"model.{mode}.onnx", calibration, mode,
                            eval_loader=make_loader(test, 256)), flush=True)  # fmt: skip

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        scripted = torch.jit.load(str(work / "model.ts"))
    sessions = {mode: onnx_session(work / f"model.{mode}.onnx") for mode in ("static", "dynamic")}
    onnx_fp32 = onnx_session(work / "model.onnx")
    singles = [images[i : i + 1] for i in range(len(images))]
    arrays = [x.numpy() for x in singles]
    jpegs = [p.read_bytes() for p in sorted((folder / "test").glob("*/*.jpg"))[:64]]

    def eager(i: int):
        with torch.inference_mode():
            return model(singles[i % 64])

    def torchscript(i: int):
        with torch.inference_mode():
            return scripted(singles[i % 64])

    def onnx_runtime(session):
        return lambda i: session.run(None, {"images": arrays[i % 64]})

    backends = {
        "eager PyTorch": eager,
        "TorchScript": torchscript,
        "ONNX Runtime": onnx_runtime(onnx_fp32),
        "ONNX Runtime, static int8": onnx_runtime(sessions["static"]),
        "ONNX Runtime, dynamic int8": onnx_runtime(sessions["dynamic"]),
        "Predictor.predict(JPEG bytes)": lambda i: predictor.predict(jpegs[i % 64], k=3),
    }
    print(f"\nsingle-image latency, {args.runs} calls each after 20 warm-up calls "
          f"(torch threads {torch.get_num_threads()}, ONNX Runtime default threads)")  # fmt: skip
    print(f"{'backend':<31} {'p50 ms':>8} {'p99 ms':>8} {'p50 vs eager':>13}")
    base = None
    for name, fn in backends.items():
        p50, p99 = percentiles(time_calls(fn, args.runs))
        base = base or p50
        print(f"{name:<31} {p50:8.3f} {p99:8.3f} {base / p50:12.2f}x", flush=True)

    in_process = time_calls(lambda i: predictor.predict(jpegs[i % 64], k=3), args.requests, 0)
    load = api_load(model_file, jpegs, args.requests, args.concurrency)
    p50, p99 = percentiles(load["latencies"])
    direct_rps = len(in_process) / sum(in_process)
    print(f"\nweb API (cnnlab serve, 1 uvicorn worker, eager PyTorch) on 127.0.0.1, "
          f"{args.requests} uploads of real CIFAR-10 JPEGs from {args.concurrency} client "
          f"threads on the same {os.cpu_count()} cores:")  # fmt: skip
    print(f"  {load['rps']:.0f} requests/s; latency per request p50 {p50:.1f} ms, "
          f"p99 {p99:.1f} ms")  # fmt: skip
    print(f"  baseline, Predictor.predict in process, one caller: {direct_rps:.0f} predictions/s "
          f"(the API reaches {load['rps'] / direct_rps:.2f}x of it)")  # fmt: skip


if __name__ == "__main__":
    main()

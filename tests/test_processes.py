"""Real processes, as a learner runs them: a `cnnlab serve` process under a bounded burst
of pixel-bomb uploads, and a `cnnlab train` killed with SIGKILL in the middle of writing
its checkpoint, then run again with the same command.

Everything stays on 127.0.0.1; every loop is bounded in count and time; each test stops
the processes it started."""

from __future__ import annotations

import io
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import httpx
import pytest
from PIL import Image

from cnnlab.data import CIFAR10_CLASSES
from cnnlab.inference import Predictor, Preprocessing
from cnnlab.models import SimpleCNN

BURST_THREADS, BURST_PER_THREAD = 4, 6
RSS_GROWTH_BOUND_MB = 60  # a decoded 9000 x 9000 RGB bomb alone would be 243 MB


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


@pytest.fixture
def server(tmp_path):
    model = Predictor(SimpleCNN(), CIFAR10_CLASSES, Preprocessing(32)).save(
        tmp_path / "m.pt", {"name": "SimpleCNN", "kwargs": {}})  # fmt: skip
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k != "GLIBC_TUNABLES"}  # memory as served
    process = subprocess.Popen([sys.executable, "-m", "cnnlab.cli", "serve", str(model),
                                "--port", str(port)], stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, env=env)  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        else:
            pytest.fail(f"cnnlab serve did not start: {process.stderr.read1().decode()[-2000:]}")
        yield base, process
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def test_a_burst_of_pixel_bombs_is_refused_and_health_answers_throughout(server):
    base, process = server
    buffer = io.BytesIO()
    Image.new("L", (9000, 9000)).save(buffer, format="PNG")
    bomb = buffer.getvalue()
    assert len(bomb) < 300_000  # small upload, 81 megapixels declared
    httpx.post(f"{base}/predict", files={"file": ("warm.png", bomb)}, timeout=30)  # warm-up
    rss_before = _rss_mb(process.pid)
    statuses, health, peak = [], [], [rss_before]
    done = threading.Event()

    def attack():
        with httpx.Client(timeout=30) as client:
            for i in range(BURST_PER_THREAD):
                r = client.post(f"{base}/predict", files={"file": (f"bomb{i}.png", bomb)})
                statuses.append((r.status_code, r.json()["detail"]))

    def watch():
        with httpx.Client(timeout=5) as client:
            while not done.is_set():
                start = time.monotonic()
                health.append((client.get(f"{base}/health").status_code, time.monotonic() - start))
                peak.append(_rss_mb(process.pid))
                time.sleep(0.05)

    watcher = threading.Thread(target=watch)
    watcher.start()
    attackers = [threading.Thread(target=attack) for _ in range(BURST_THREADS)]
    for t in attackers:
        t.start()
    for t in attackers:
        t.join(timeout=120)
    done.set()
    watcher.join(timeout=10)
    assert len(statuses) == BURST_THREADS * BURST_PER_THREAD
    assert all(code == 413 and "9000 x 9000" in detail for code, detail in statuses)
    assert health and all(code == 200 and seconds < 2 for code, seconds in health)
    assert max(peak) - rss_before < RSS_GROWTH_BOUND_MB, (rss_before, max(peak))
    good = io.BytesIO()
    Image.new("RGB", (40, 30), (10, 200, 30)).save(good, format="PNG")
    r = httpx.post(f"{base}/predict", files={"file": ("ok.png", good.getvalue())}, timeout=30)
    assert r.status_code == 200  # and it still serves


SLOW_SAVE = textwrap.dedent("""
    # Installed by the test as sitecustomize: the second checkpoint write stops halfway,
    # announces itself, and waits to be killed.
    import os, time
    from pathlib import Path
    import torch

    _real, _count = torch.save, [0]

    def _slow_save(obj, f, *args, **kwargs):
        if isinstance(obj, dict) and obj.get("format") == "cnnlab-checkpoint-1" and "model_spec" not in obj["extra"]:
            _count[0] += 1
            if _count[0] == 2:
                f.write(b"PK\\x03\\x04 the first half of a checkpoint")
                f.flush()
                Path(os.environ["KILL_ME_NOW"]).touch()
                time.sleep(600)
        return _real(obj, f, *args, **kwargs)

    torch.save = _slow_save
""")


@pytest.mark.filterwarnings("ignore:resuming with num_workers")  # what the CLI says, expected
def test_a_kill_during_the_checkpoint_write_loses_nothing(tmp_path, monkeypatch, capsys):
    """Killed in a subprocess while writing; the same command run again (here, in this
    process: the CLI's own code, without a second start of Python) keeps what was saved."""
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(SLOW_SAVE)
    out, marker = tmp_path / "m.pt", tmp_path / "writing"
    env = os.environ | {"CNNLAB_FAST": "1", "CNNLAB_OFFLINE": "1", "KILL_ME_NOW": str(marker),
                        "PYTHONPATH": os.pathsep.join([str(hook), os.environ.get("PYTHONPATH", "")])}  # fmt: skip
    command = [sys.executable, "-m", "cnnlab.cli", "train", "--epochs", "2", "--batch-size", "64",
               "--out", str(out)]  # fmt: skip
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 180
        while not marker.exists() and time.monotonic() < deadline and process.poll() is None:
            time.sleep(0.05)
        assert marker.exists(), process.stderr.read().decode()[-3000:]
        process.send_signal(signal.SIGKILL)  # in the middle of writing epoch 2's checkpoint
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    checkpoint = tmp_path / "m-training.pt"
    from cnnlab.checkpoints import safe_load

    saved = checkpoint.read_bytes()
    assert safe_load(checkpoint)["epoch"] == 1  # epoch 1's checkpoint, intact
    assert [p.name for p in tmp_path.glob(".m-training.pt.*.tmp")]  # the half-written file
    from cnnlab.cli import main

    for name in ("CNNLAB_FAST", "CNNLAB_OFFLINE"):
        monkeypatch.setenv(name, "1")
    capsys.readouterr()
    assert main(command[3:]) == 2
    message = capsys.readouterr().err.strip()
    assert len(message.splitlines()) == 1 and "--resume" in message and "--overwrite" in message
    assert checkpoint.read_bytes() == saved and not out.exists()  # nothing was overwritten
    assert main([*command[3:], "--resume"]) == 0
    assert "resumed from" in capsys.readouterr().out and safe_load(checkpoint)["epoch"] == 2
    assert not list(tmp_path.glob(".m-training.pt.*.tmp"))  # the killed writer's file is gone

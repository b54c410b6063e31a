"""Environment switches, device choice and seeding: read in one place.

The switches are environment variables, so that a notebook needs no edited cell to
change mode. They are read each time you ask, so setting one in a running notebook
(``os.environ["CNNLAB_FAST"] = "1"``) takes effect at the next call.

======================== =======================================================
``CNNLAB_FAST=1``        Quick smoke run: notebooks use tiny subsets and one short
                         epoch (see :func:`choose`).
``CNNLAB_OFFLINE=1``     No downloads: data loaders return a generated stand-in data
                         set and model builders use random weights, each announced
                         by a banner.
``CNNLAB_DATA_DIR``      Where data sets are downloaded and cached (default
                         ``./data``).
``CNNLAB_CIFAR10_DIR``   A CIFAR-10 copy in ImageFolder layout (``train/<class>/``,
                         ``test/<class>/``), or a ``.tar.gz`` of one, used instead of
                         torchvision's download.
``CNNLAB_PROGRESS=text`` Text progress bars in notebooks too (read when cnnlab is
                         imported; the website's builds set it, see
                         :mod:`cnnlab.progress`).
======================== =======================================================
"""

from __future__ import annotations

import ctypes
import functools
import os
import random
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

FAST_ENV = "CNNLAB_FAST"
OFFLINE_ENV = "CNNLAB_OFFLINE"
DATA_DIR_ENV = "CNNLAB_DATA_DIR"
CIFAR10_DIR_ENV = "CNNLAB_CIFAR10_DIR"

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"", "0", "false", "no", "off"}


def _flag(name: str) -> bool:
    raw = os.environ.get(name, "").strip().lower()
    if raw in _TRUE:
        return True
    if raw in _FALSE:
        return False
    raise ValueError(f"{name}={raw!r} is not understood: set it to 1 (on) or 0 (off).")


def fast_mode() -> bool:
    """Return True when ``CNNLAB_FAST`` asks for a quick smoke run.

    Example:
        >>> import os; os.environ["CNNLAB_FAST"] = "1"
        >>> fast_mode()
        True
    """
    return _flag(FAST_ENV)


def offline_mode() -> bool:
    """Return True when ``CNNLAB_OFFLINE`` asks for stand-in data and random weights.

    Example:
        >>> import os; os.environ["CNNLAB_OFFLINE"] = "0"
        >>> offline_mode()
        False
    """
    return _flag(OFFLINE_ENV)


def data_dir() -> Path:
    """Return the data root: ``CNNLAB_DATA_DIR`` or ``./data``.

    Example:
        >>> data_dir().name
        'data'
    """
    return Path(os.environ.get(DATA_DIR_ENV) or "data").expanduser()


def cifar10_dir() -> Path | None:
    """Return the CIFAR-10 ImageFolder copy named by ``CNNLAB_CIFAR10_DIR``, if any.

    Example:
        >>> import os; os.environ.pop("CNNLAB_CIFAR10_DIR", None)
        >>> cifar10_dir() is None
        True
    """
    raw = os.environ.get(CIFAR10_DIR_ENV)
    return Path(raw).expanduser() if raw else None


@dataclass(frozen=True)
class Settings:
    """A snapshot of the switches, handy to print at the top of a notebook."""

    fast: bool
    offline: bool
    data_dir: Path
    cifar10_dir: Path | None
    device: str

    def __str__(self) -> str:
        rows = [
            ("CNNLAB_FAST", "on (smoke run)" if self.fast else "off (full run)"),
            ("CNNLAB_OFFLINE", "on (stand-in data, random weights)" if self.offline else "off"),
            ("CNNLAB_DATA_DIR", str(self.data_dir)),
            ("CNNLAB_CIFAR10_DIR", str(self.cifar10_dir) if self.cifar10_dir else "(not set)"),
            ("device", self.device),
        ]
        return "\n".join(f"{k:<20} {v}" for k, v in rows)


def current() -> Settings:
    """Read every switch now and return them together.

    Example:
        >>> print(current())  # doctest: +SKIP
        CNNLAB_FAST          off (full run)
        ...
    """
    return Settings(fast_mode(), offline_mode(), data_dir(), cifar10_dir(), str(get_device()))


def choose(full, fast):
    """Return ``fast`` in a smoke run (``CNNLAB_FAST=1``), else ``full``.

    Notebooks size their work with it, so one switch shrinks every notebook.

    Example:
        >>> epochs = choose(full=30, fast=1)
    """
    return fast if fast_mode() else full


def banner(message: str) -> None:
    """Print a message in a box that nobody can miss (used for every fallback). Under
    ``torchrun`` only rank 0 prints it: every process would say the same.

    Example:
        >>> banner("CNNLAB_OFFLINE=1: using generated stand-in data")  # doctest: +SKIP
    """
    if os.environ.get("RANK", "0") != "0":  # torchrun's global rank; absent in one process
        return
    lines = message.splitlines() or [""]
    width = max(len(line) for line in lines) + 4
    bar = "#" * width
    body = "\n".join(f"# {line:<{width - 4}} #" for line in lines)
    print(f"{bar}\n{body}\n{bar}", file=sys.stdout, flush=True)


def get_device(prefer: str | None = None) -> torch.device:
    """Pick the best available device: CUDA, then Apple's MPS, then the CPU.

    ``prefer`` (e.g. ``"cpu"``) overrides the choice.

    Example:
        >>> device = get_device()
        >>> model = torch.nn.Linear(2, 2).to(device)
    """
    if prefer is not None:
        return torch.device(prefer)
    if torch.cuda.is_available():
        return torch.device("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


PRECISIONS = ("auto", "fp32", "bf16", "fp16")
_ALIASES = {"float32": "fp32", "32": "fp32", "bfloat16": "bf16", "float16": "fp16", "half": "fp16"}


def _capability(device: torch.device) -> tuple[int, int]:
    return torch.cuda.get_device_capability(device)


@functools.cache
def cpu_has_bf16() -> bool:
    """Whether this CPU computes in bfloat16 natively (x86 ``avx512_bf16`` or ``amx_bf16``,
    read from ``/proc/cpuinfo``; False where that file does not exist). Without those
    instructions PyTorch emulates bfloat16 on the CPU, slower than float32.

    Example:
        >>> isinstance(cpu_has_bf16(), bool)
        True
    """
    try:
        flags = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace").split()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def autocast_dtype(device: torch.device | str, precision: str = "auto") -> torch.dtype | None:
    """The dtype to run the forward pass in under ``torch.autocast``, or None for float32.

    ``precision`` is ``"auto"``, ``"fp32"``, ``"bf16"`` or ``"fp16"``:

    - ``"auto"`` on CUDA: bfloat16 from compute capability 8.0 (Ampere: A100, RTX 30xx,
      and later), float16 below it (a T4 is 7.5, a V100 7.0), where bfloat16 has no
      hardware support and would be emulated, slower than float32. On a CPU, bfloat16
      where it has bfloat16 instructions (:func:`cpu_has_bf16`: Intel Xeon from Cooper
      Lake and Sapphire Rapids, AMD from Zen 4), where we measured CNN training 1.4 to 2
      times faster; float32 on other CPUs and on Apple's MPS.
    - ``"bf16"`` is refused on CUDA GPUs below 8.0, with the reason; ``"fp16"`` and
      ``"bf16"`` are honoured elsewhere (PyTorch runs both on the CPU too).
    - float16 needs a gradient scaler (:func:`grad_scaler` makes one): its small range
      turns tiny gradients into zeros unless the loss is scaled up first.

    Example:
        >>> autocast_dtype("cpu", "fp32") is None
        True
        >>> autocast_dtype("cpu", "bf16")
        torch.bfloat16
        >>> autocast_dtype("cpu", "fp8")
        Traceback (most recent call last):
        ...
        ValueError: precision='fp8' is not one of auto, fp32, bf16, fp16 ...
    """
    device = torch.device(device)
    name = _ALIASES.get(str(precision).lower(), str(precision).lower())
    if name not in PRECISIONS:
        raise ValueError(
            f"precision={precision!r} is not one of {', '.join(PRECISIONS)} ('auto' picks "
            "bfloat16 or float16 on a GPU, bfloat16 on a CPU with bfloat16 instructions and "
            "float32 elsewhere; 'fp32' turns mixed precision off)."
        )
    if name == "fp32":
        return None
    if device.type != "cuda":
        auto = torch.bfloat16 if device.type == "cpu" and cpu_has_bf16() else None
        return {"auto": auto, "bf16": torch.bfloat16, "fp16": torch.float16}[name]
    major, minor = _capability(device)
    if name == "fp16" or (name == "auto" and major < 8):
        return torch.float16
    if name == "bf16" and major < 8:
        raise ValueError(
            f"precision='bf16' on {_gpu_name(device)} (compute capability {major}.{minor}): "
            "bfloat16 needs compute capability 8.0 or newer (A100, RTX 30xx, L4, H100); below "
            "that it is emulated and slower than float32. Use precision='fp16' (with a "
            "gradient scaler, which fit adds) or precision='auto'."
        )
    return torch.bfloat16


def keep_freed_memory() -> bool:
    """Ask the C library to keep freed memory for reuse instead of handing large blocks back
    to the operating system (Linux with glibc; elsewhere nothing changes). Returns whether
    it applied.

    A CPU training step allocates its activations and gradients afresh; glibc serves
    blocks over a threshold straight from the OS and returns them on ``free``, so every
    step touches fresh pages: FastNet at batch 512 took about 50,000 page faults per step on
    our 2-core machine, and about 2,000 with the thresholds raised (``mallopt``), which
    made its training steps 10 to 25% faster there. The process keeps its peak memory in exchange. It is
    process-wide; :func:`cnnlab.recipes.cifar10_fast` calls it on a CPU.

    Example:
        >>> keep_freed_memory() in (True, False)
        True
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:  # musl or another C library
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3
    # Blocks up to 1 GiB come from the reusable heap, which is trimmed only above 1 GiB free.
    mmap = libc.mallopt(m_mmap_threshold, 2**30) == 1 or libc.mallopt(m_mmap_threshold, 2**25) == 1
    return libc.mallopt(m_trim_threshold, 2**30) == 1 and mmap


def _gpu_name(device: torch.device) -> str:
    try:
        return torch.cuda.get_device_name(device)
    except Exception:  # a mocked or vanished device: the capability says enough
        return "this GPU"


def grad_scaler(
    device: torch.device | str, dtype: torch.dtype | None
) -> torch.amp.GradScaler | None:
    """A ``GradScaler`` when ``dtype`` is float16 (on any device), else None.

    Example:
        >>> grad_scaler("cpu", torch.float16).is_enabled(), grad_scaler("cpu", None)
        (True, None)
    """
    if dtype != torch.float16:
        return None
    return torch.amp.GradScaler(torch.device(device).type)


def plural(count: int, noun: str) -> str:
    """``count`` and ``noun``, with an "s" unless there is exactly one.

    Example:
        >>> plural(1, "epoch"), plural(8, "epoch")
        ('1 epoch', '8 epochs')
    """
    return f"{count:,} {noun}{'' if count == 1 else 's'}"


def share(fraction: float) -> str:
    """A fraction as a whole percentage that never reads "0%" for a few out of many (the
    new head of a frozen network: 645 of 412,309 parameters).

    Example:
        >>> share(645 / 412_309), share(0.75)
        ('<1%', '75%')
    """
    return "<1%" if 0 < fraction < 0.01 else f"{fraction:.0%}"


def smoke_note(text: str = "") -> str:
    """In a smoke run (``CNNLAB_FAST=1``), ``text`` followed by a warning that the numbers
    mean nothing; in a full run, ``text`` unchanged. Notebooks put it on every result.

    Example:
        >>> import os; os.environ["CNNLAB_FAST"] = "1"
        >>> smoke_note("test accuracy 11%")
        'test accuracy 11%  [SMOKE RUN (CNNLAB_FAST=1): tiny data, one short epoch; this number means nothing]'
    """
    if not fast_mode():
        return text
    return f"{text}  {SMOKE_TAG}" if text else SMOKE_TAG


SMOKE_TAG = "[SMOKE RUN (CNNLAB_FAST=1): tiny data, one short epoch; this number means nothing]"


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and PyTorch (CPU and every GPU) with one number.

    On the CPU, a run with the same seed gives the same numbers. On a GPU, some
    kernels are still non-deterministic unless you also call
    ``torch.use_deterministic_algorithms(True)``.

    Example:
        >>> seed_everything(0); a = torch.rand(1)
        >>> seed_everything(0); b = torch.rand(1)
        >>> bool(a == b)
        True
    """
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)


def rng_state() -> dict:
    """This process's random generators: torch's, NumPy's, Python's and the current CUDA
    device's (one device: the process's own, so that a machine with fewer GPUs can restore
    it).

    Example:
        >>> sorted(rng_state())
        ['cuda', 'numpy', 'python', 'torch']
    """
    np_state = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "numpy": (np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *np_state[2:]),
        "python": random.getstate(),
        "cuda": torch.cuda.get_rng_state() if torch.cuda.is_available() else None,
    }


def set_rng_state(state: dict) -> None:
    """Restore :func:`rng_state`'s generators. A CUDA state goes to the current device; an
    older checkpoint's list of every GPU's states gives the current device its own entry
    (or none, on a machine without that GPU).

    Example:
        >>> set_rng_state(rng_state())
    """
    torch.set_rng_state(state["torch"])
    name, keys, *rest = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), *rest))
    random.setstate(state["python"])
    cuda = state.get("cuda")
    if isinstance(cuda, list | tuple):  # cnnlab before 0.2 saved every device's state
        index = torch.cuda.current_device() if torch.cuda.is_available() else len(cuda)
        cuda = cuda[index] if index < len(cuda) else None
    if cuda is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state(cuda)

"""Saving and loading: weights (``state_dict``), and full training checkpoints that resume.

Two rules, both for safety:

- **Writes are atomic.** A checkpoint is written to a temporary file in the same folder
  and renamed over the old one, so an interrupted save (a crash, Ctrl-C, a full disk)
  leaves the previous checkpoint intact instead of a truncated file.
- **Loads never run code.** ``torch.load(..., weights_only=True)`` only rebuilds tensors
  and plain containers. A pickled *model object* can carry arbitrary code that runs
  while it is unpickled; such a file is refused with an explanation.

Example:
    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "simplecnn.pt"
    >>> save_weights(SimpleCNN(), path).name
    'simplecnn.pt'
    >>> model = load_weights(SimpleCNN(), path)
"""

from __future__ import annotations

import os
import pickle
import re
import socket
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import fields
from pathlib import Path

import torch
from torch import nn

from .errors import CnnlabError, plain_text
from .settings import rng_state, set_rng_state

FORMAT = "cnnlab-checkpoint-1"
# torch.save's legacy (non-zip) files begin with this pickled magic number; other files
# that begin with a pickle opcode were written by pickle.dump, not torch.save.
_TORCH_LEGACY_MAGIC = b"\x80\x02\x8a\nl\xfc\x9cF\xf9 j\xa8P\x19."
STALE_AFTER_SECONDS = 3600  # another machine's temporary file older than this is abandoned


class CheckpointError(CnnlabError, RuntimeError):
    """A checkpoint could not be read safely, or does not fit the model."""


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, but another user's
        pass
    return True


def _host() -> str:
    """This machine's name as it appears in temporary file names (no dots)."""
    return re.sub(r"[^A-Za-z0-9_-]", "-", socket.gethostname()) or "host"


def remove_stale_temporaries(folder: Path, name: str) -> list[Path]:
    """Delete temporary files that a killed writer of ``name`` left in ``folder``. A file
    names its writer's machine and process id: on this machine it is stale when that
    process no longer runs; a file from another machine (a shared disk) is judged by
    age, stale after :data:`STALE_AFTER_SECONDS` (no save takes an hour), since this
    machine cannot see the other's processes.

    Example:
        >>> import tempfile, pathlib
        >>> remove_stale_temporaries(pathlib.Path(tempfile.mkdtemp()), "last.pt")
        []
    """
    removed, here = [], _host()
    for tmp in folder.glob(f".{name}.*.tmp"):
        parts = tmp.name[len(name) + 2 :].split(".")
        if parts[0].isdigit():  # written by an older cnnlab: the process id alone
            host, pid = here, parts[0]
        elif len(parts) > 2 and parts[1].isdigit():
            host, pid = parts[0], parts[1]
        else:
            continue
        if host == here:
            stale = not _pid_alive(int(pid))
        else:
            stale = time.time() - tmp.stat().st_mtime > STALE_AFTER_SECONDS
        if stale:
            tmp.unlink(missing_ok=True)
            removed.append(tmp)
    return removed


def atomic_save(obj: object, path: str | Path) -> Path:
    """``torch.save`` to a temporary file next to ``path``, then rename it over ``path``.

    The rename is atomic on the same file system, so readers see the old file or the
    new one, never half of one. The temporary file's name holds this machine's name and
    this process's id, so two writers never share one, and the next save removes what a
    killed writer left (:func:`remove_stale_temporaries`).

    Example:
        >>> import tempfile, pathlib
        >>> atomic_save({"step": 1}, pathlib.Path(tempfile.mkdtemp()) / "state.pt").name
        'state.pt'
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path.parent, path.name)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{_host()}.{os.getpid()}.", suffix=".tmp",
                               dir=path.parent)  # fmt: skip
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _not_a_checkpoint(path: Path) -> str | None:
    """Why the file at ``path`` cannot be a PyTorch checkpoint, judged from its first bytes
    (None when it could be one)."""
    with open(path, "rb") as f:
        head = f.read(1024)
    if not head:
        return "is empty (0 bytes): the save or the copy did not finish. Use another copy."
    if head.startswith(b"PK\x03\x04") or head.startswith(_TORCH_LEGACY_MAGIC):
        return None  # torch.save's zip archive, or its legacy (non-zip) format
    if head[:1] == b"\x80":
        return ("is a plain Python pickle (written with pickle.dump, not torch.save). cnnlab "
                "does not unpickle such files: unpickling can run any code. If you made it, "
                "read it once with pickle.load in a trusted setting and save the weights with "
                "torch.save(model.state_dict(), path).")  # fmt: skip
    text = head.lstrip().lower()
    if text.startswith((b"<!doctype html", b"<html", b"<?xml")):
        return ("is an HTML page, not a checkpoint: a download that saved an error or login "
                "page? Download the file again from its original link.")  # fmt: skip
    try:
        head.decode("utf-8")
        return "is a text file, not a PyTorch checkpoint: check the file name."
    except UnicodeDecodeError:
        pass
    return ("is not a PyTorch checkpoint: it is neither a zip archive (what torch.save writes) "
            "nor a pickle. Check the file name, or copy the file again.")  # fmt: skip


def safe_load(path: str | Path, map_location: str | torch.device = "cpu") -> object:
    """``torch.load(path, weights_only=True)``, with errors that say what the file is.

    A missing file, an empty, truncated or damaged one, a text file, an HTML page saved
    by a failed download, random bytes, and a file holding pickled Python objects (a
    whole model saved with ``torch.save(model)``, or something malicious) each get their
    own message and fix; pickled code is never run.

    Example:
        >>> import tempfile, pathlib
        >>> p = atomic_save({"w": torch.ones(2)}, pathlib.Path(tempfile.mkdtemp()) / "w.pt")
        >>> safe_load(p)["w"]
        tensor([1., 1.])
    """
    path = Path(path)
    if not path.is_file():
        what = "a folder" if path.is_dir() else "no file"
        raise CheckpointError(f"{path} is {what}, not a checkpoint: check the path (and that "
                              "training saved one there).")  # fmt: skip
    reason = _not_a_checkpoint(path)
    if reason:
        raise CheckpointError(f"{path} {reason}")
    try:
        with warnings.catch_warnings():  # torch's notes on pickle protocols: not the user's
            warnings.simplefilter("ignore", UserWarning)
            return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as error:
        if "GLOBAL" not in str(error) and "global" not in str(error).lower():
            raise CheckpointError(f"{path} is damaged: its pickle data cannot be read "
                                  f"({_first_line(error)}). Use an earlier checkpoint or "
                                  "copy.") from error  # fmt: skip
        raise CheckpointError(
            f"{path} is not a plain weights file: it contains pickled Python objects, which "
            "could run arbitrary code when loaded, so it was refused (weights_only=True). "
            "If you made this file yourself with torch.save(model), load it once with "
            "torch.load(path, weights_only=False) in a trusted setting and re-save "
            f"model.state_dict(). Details: {_first_line(error)}"
        ) from error
    except (RuntimeError, EOFError, ValueError, OSError, IndexError) as error:
        raise CheckpointError(
            f"{path} is truncated or damaged: it starts like a PyTorch file but cannot be read "
            f"({_first_line(error)}). An interrupted copy or download? Copy it again, "
            "or use an earlier checkpoint."
        ) from error


def _first_line(error: BaseException) -> str:
    """The first line of an error's text, without terminal colour codes (torch adds some)."""
    lines = plain_text(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__


def describe(state: object) -> str:
    """What a loaded checkpoint holds: ``"model"`` (a model file from
    :meth:`cnnlab.inference.Predictor.save` or ``cnnlab train``: weights, class names,
    preprocessing), ``"training"`` (a checkpoint to resume from), ``"state_dict"``
    (weights only) or ``"unknown"``.

    Example:
        >>> describe({"fc.weight": torch.zeros(2, 2)})
        'state_dict'
    """
    if isinstance(state, dict) and state.get("format") == FORMAT:
        return "model" if "model_spec" in (state.get("extra") or {}) else "training"
    if (
        isinstance(state, dict)
        and state
        and all(isinstance(v, torch.Tensor) for v in state.values())
    ):
        return "state_dict"
    return "unknown"


def _load_into(model: nn.Module, weights: dict, path: str | Path, strict: bool = True,
               assign: bool = False) -> nn.Module:  # fmt: skip
    """``model.load_state_dict``; weights that do not fit say which, and what that suggests."""
    try:
        model.load_state_dict(weights, strict=strict, assign=assign)
    except RuntimeError as error:
        text = str(error)
        hint = ("build the model with the same architecture and number of classes as the "
                "one that was saved")  # fmt: skip
        if "size mismatch" in text and "Missing key" not in text:
            hint = ("the architecture matches but some shapes do not: most often another "
                    "number of classes (num_classes) or image size (input_size)")  # fmt: skip
        lines = [line.strip() for line in text.splitlines() if line.strip()][:4]
        raise CheckpointError(f"the weights in {path} do not fit this {type(model).__name__}: "
                              f"{hint}.\n" + "\n".join(lines)) from error  # fmt: skip
    return model


def save_weights(model: nn.Module, path: str | Path) -> Path:
    """Save ``model.state_dict()`` atomically: the recommended way to keep weights.

    Example:
        >>> import tempfile, pathlib
        >>> save_weights(nn.Linear(2, 1), pathlib.Path(tempfile.mkdtemp()) / "w.pt").suffix
        '.pt'
    """
    return atomic_save(model.state_dict(), path)


def load_weights(model: nn.Module, path: str | Path, strict: bool = True) -> nn.Module:
    """Load weights saved by :func:`save_weights` (or any ``state_dict`` file) safely.

    Example:
        >>> import tempfile, pathlib
        >>> p = save_weights(nn.Linear(2, 1), pathlib.Path(tempfile.mkdtemp()) / "w.pt")
        >>> load_weights(nn.Linear(2, 1), p)
        Linear(in_features=2, out_features=1, bias=True)
    """
    state = safe_load(path)
    if describe(state) in ("model", "training"):
        state = state["model"]
    elif describe(state) != "state_dict":
        raise CheckpointError(f"{path} holds no weights cnnlab recognises (neither a state_dict "
                              "nor a cnnlab checkpoint).")  # fmt: skip
    return _load_into(model, state, path, strict=strict)


def build_with_weights(build: Callable[[], nn.Module], weights: dict, path: str | Path
                       ) -> nn.Module:  # fmt: skip
    """``build()`` with a ``state_dict`` loaded from ``path``: built on the ``meta`` device
    (no memory, no random initialisation: a second for VGG-16) and the loaded tensors put
    in the parameters' places, or built normally where that cannot work.

    Example:
        >>> build_with_weights(lambda: nn.Linear(2, 1), nn.Linear(2, 1).state_dict(), "w.pt")
        Linear(in_features=2, out_features=1, bias=True)
    """
    try:
        with torch.device("meta"):
            skeleton = build()
    except Exception:  # noqa: BLE001 - it needed real values: the build below says what is wrong
        skeleton = None
    if skeleton is not None:
        _load_into(skeleton, weights, path, assign=True)
        if not any(t.is_meta for t in (*skeleton.parameters(), *skeleton.buffers())):
            return skeleton  # else a buffer outside the state_dict was left on meta
    return _load_into(build(), weights, path)


def save_checkpoint(
    path: str | Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: object | None = None,
    epoch: int = 0,
    history: object | None = None,
    extra: dict | None = None,
    loader_generator: torch.Generator | None = None,
    scaler: torch.amp.GradScaler | None = None,
    rng_per_rank: list[dict] | None = None,
) -> Path:
    """Write everything needed to resume training, atomically.

    Saved: model, optimizer, scheduler and gradient-scaler states, the epoch, the History,
    the random number generators (torch, NumPy, Python, CUDA, and the loader's shuffling
    generator; under torchrun ``rng_per_rank`` holds every process's own), the cnnlab and
    torch versions, and ``extra`` (class names, preprocessing settings: plain values and
    tensors only).

    Example:
        >>> import tempfile, pathlib
        >>> model = nn.Linear(2, 1); opt = torch.optim.SGD(model.parameters(), lr=0.1)
        >>> p = save_checkpoint(pathlib.Path(tempfile.mkdtemp()) / "ckpt.pt", model, opt, epoch=3,
        ...                     extra={"classes": ["cat", "dog"]})
        >>> load_checkpoint(p, nn.Linear(2, 1))["extra"]
        {'classes': ['cat', 'dog']}
    """
    from . import __version__

    history_dict = ({f.name: list(getattr(history, f.name)) for f in fields(history)}
                    if history is not None else None)  # fmt: skip
    state = {
        "format": FORMAT,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        "scaler": scaler.state_dict() if scaler is not None else None,
        "epoch": epoch,
        "history": history_dict,
        "rng": rng_state(),
        "rng_per_rank": rng_per_rank,
        "loader_generator": loader_generator.get_state() if loader_generator is not None else None,
        "versions": {"cnnlab": str(__version__), "torch": str(torch.__version__)},
        "extra": extra or {},
    }
    return atomic_save(state, path)


def load_checkpoint(
    path: str | Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: object | None = None,
    restore_rng: bool = False,
    loader_generator: torch.Generator | None = None,
    scaler: torch.amp.GradScaler | None = None,
    rank: int = 0,
    world: int = 1,
) -> dict:
    """Load a checkpoint from :func:`save_checkpoint` into ``model`` (and the optimizer,
    scheduler and gradient scaler when given) and return the whole dictionary (``epoch``, ``history``,
    ``extra``, ``versions``). With ``restore_rng`` the random generators continue where
    they were, so that a resumed run repeats the uninterrupted one exactly: process
    ``rank`` of ``world`` takes its own generators when the file holds one per process
    (saved under torchrun by as many processes), else the saving process's.

    Tensors are read onto the CPU; ``load_state_dict`` moves the model's, the optimizer's
    and the scaler's to where the model's parameters are.

    Example:
        >>> state = load_checkpoint("checkpoints/last.pt", model, optimizer)  # doctest: +SKIP
        >>> state["epoch"]  # doctest: +SKIP
        3
    """
    state = safe_load(path)
    if describe(state) not in ("model", "training"):
        raise CheckpointError(f"{path} is not a cnnlab training checkpoint but a "
                              f"{describe(state).replace('_', ' ')} file; for a plain state_dict "
                              "use load_weights(model, path).")  # fmt: skip
    _load_into(model, state["model"], path)
    if optimizer is not None and state["optimizer"] is not None:
        optimizer.load_state_dict(state["optimizer"])
    if scheduler is not None and state["scheduler"] is not None:
        scheduler.load_state_dict(state["scheduler"])
    if scaler is not None and state.get("scaler") is not None:
        scaler.load_state_dict(state["scaler"])
    if restore_rng:
        per_rank = state.get("rng_per_rank")
        if per_rank and len(per_rank) != world:
            warnings.warn(f"{path} was saved by {len(per_rank)} processes and is resumed by "
                          f"{world}: each process continues from the first process's random "
                          "state, so random augmentation differs from an uninterrupted run.",
                          stacklevel=2)  # fmt: skip
        set_rng_state(per_rank[rank] if per_rank and len(per_rank) == world else state["rng"])
        if loader_generator is not None and state["loader_generator"] is not None:
            loader_generator.set_state(state["loader_generator"])
    return state

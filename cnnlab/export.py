"""Export a trained model to TorchScript or ONNX, each followed by a parity check.

An exported model is a different program: a tracer can bake in a shape, an operator can
be translated slightly differently. So every export here is loaded back and run on real
inputs next to the eager model, and the largest difference is reported (and bounded).

Example:
    >>> report = export_onnx(SimpleCNN().eval(), "model.onnx", example)  # doctest: +SKIP
    >>> print(report)  # doctest: +SKIP
    onnx model.onnx: 9.4 MB, opset 20, max |difference| vs eager 8.6e-08 on 8 inputs
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from .errors import CnnlabError
from .models import inference_copy


class ExportParityError(CnnlabError, AssertionError):
    """The exported model's outputs differ from the eager model's by more than allowed."""


@dataclass(frozen=True)
class ExportReport:
    """Where an export went, how big it is, and how closely it matches the eager model."""

    format: str
    path: Path
    size_bytes: int
    max_abs_diff: float
    inputs_checked: int
    opset: int | None = None

    def __str__(self) -> str:
        opset = f", opset {self.opset}" if self.opset is not None else ""
        return (f"{self.format} {self.path}: {self.size_bytes / 1e6:.1f} MB{opset}, max "
                f"|difference| vs eager {self.max_abs_diff:.1e} on {self.inputs_checked} inputs")  # fmt: skip


@torch.no_grad()
def check_parity(reference: nn.Module, candidate, inputs: torch.Tensor, atol: float = 1e-4,
                 name: str = "export") -> float:  # fmt: skip
    """Largest absolute difference between ``reference(inputs)`` and ``candidate(inputs)``
    (``candidate`` returns a tensor or a NumPy array); raises :class:`ExportParityError`
    above ``atol`` times the size of the largest output (at least 1): float error grows
    with the values, so large logits get a proportionally larger allowance.

    Example:
        >>> net = nn.Linear(3, 2).eval()
        >>> check_parity(net, net, torch.randn(4, 3))
        0.0
    """
    expected = reference.eval()(inputs)
    got = torch.as_tensor(candidate(inputs)).to(expected.device)
    diff = (expected - got).abs().max().item()
    allowed = atol * max(1.0, expected.abs().max().item())
    if not diff <= allowed:
        raise ExportParityError(
            f"the {name} differs from the eager model by {diff:.2e} (allowed {allowed:.0e}). "
            "Export in eval mode, check for data-dependent Python control flow in forward(), "
            "and compare again."
        )
    return diff


def export_torchscript(model: nn.Module, path: str | Path, example: torch.Tensor,
                       atol: float = 1e-4) -> ExportReport:  # fmt: skip
    """Trace ``model`` with ``example`` to TorchScript, save, reload and check parity on
    ``example`` and on a batch it was not traced with (:func:`fresh_batch`).

    TorchScript runs without Python (C++ ``torch::jit::load``), but PyTorch now marks it
    deprecated in favour of ``torch.export``; prefer ONNX for new deployments. ``model``
    may be on any device, in any mode: a CPU copy in eval mode is exported, and ``model``
    is left as it was.

    Example:
        >>> report = export_torchscript(SimpleCNN().eval(), "model.ts", example)  # doctest: +SKIP
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    model, example = inference_copy(model), _cpu_batch(example)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # deprecation and tracer notes; parity is the judge
        traced = torch.jit.trace(model, example)
        traced.save(str(path))
        loaded = torch.jit.load(str(path))
    diff = check_parity(model, loaded, example, atol, "TorchScript export")
    other = fresh_batch(example)
    diff = max(diff, check_parity(model, loaded, other, atol, "TorchScript export (a new batch)"))
    return ExportReport("torchscript", path, path.stat().st_size, diff, len(example) + len(other))


def export_onnx(model: nn.Module, path: str | Path, example: torch.Tensor, atol: float = 1e-4,
                dynamic_batch: bool = True, metadata: dict | None = None) -> ExportReport:  # fmt: skip
    """Export ``model`` to ONNX (the installed torch's exporter and default opset), load it
    in ONNX Runtime and check parity on ``example`` (and, with ``dynamic_batch``, on a
    batch of another size). The weights are stored inside the one ``.onnx`` file (no
    ``.onnx.data`` beside it), so the file can be copied on its own; ONNX allows that up to
    2 GB. ``model`` may be on any device, in any mode and memory order: a CPU copy in eval
    mode is exported, and ``model`` is left as it was. ``metadata`` (plain values: class
    names, preprocessing) is stored as JSON in the file's metadata properties, where any
    ONNX runtime can read it (``onnx.load(path).metadata_props``).

    Example:
        >>> report = export_onnx(SimpleCNN().eval(), "model.onnx", example)  # doctest: +SKIP
    """
    import json

    import onnx

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    model, example = inference_copy(model), _cpu_batch(example)
    shapes = None
    if dynamic_batch:
        name = next(iter(_forward_arguments(model)))
        shapes = {name: {0: torch.export.Dim("batch", min=1, max=4096)}}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (example,), str(path), input_names=["images"],
                          output_names=["logits"], dynamic_shapes=shapes, dynamo=True,
                          external_data=False)  # fmt: skip
    if metadata:
        proto = onnx.load(str(path))
        onnx.helper.set_model_props(proto, {k: json.dumps(v) for k, v in metadata.items()})
        onnx.save(proto, str(path))
    session = onnx_session(path)
    run = lambda x: session.run(None, {"images": x.numpy()})[0]  # noqa: E731
    diff = check_parity(model, run, example, atol, "ONNX export")
    checked = len(example)
    if dynamic_batch and len(example) > 1:
        diff = max(diff, check_parity(model, run, example[:1], atol, "ONNX export (batch 1)"))
        checked += 1
    if dynamic_batch:
        other = fresh_batch(example)
        diff = max(diff, check_parity(model, run, other, atol, "ONNX export (a new batch)"))
        checked += len(other)
    opset = next(
        o.version for o in onnx.load(str(path)).opset_import if o.domain in ("", "ai.onnx")
    )
    return ExportReport("onnx", path, path.stat().st_size, diff, checked, opset)


def _cpu_batch(example: torch.Tensor) -> torch.Tensor:
    return example.detach().to("cpu", torch.float32).contiguous()


def fresh_batch(example: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """A batch the export never saw: standard normal values (what normalised images look
    like), one more image than ``example``. Tracing freezes the branches that the traced
    batch took, so parity on the traced batch alone proves little.

    Example:
        >>> fresh_batch(torch.zeros(2, 3, 8, 8)).shape
        torch.Size([3, 3, 8, 8])
    """
    generator = torch.Generator().manual_seed(seed)
    return torch.randn((len(example) + 1, *example.shape[1:]), generator=generator)


def _forward_arguments(model: nn.Module) -> list[str]:
    import inspect

    return [p for p in inspect.signature(model.forward).parameters if p != "self"]


def onnx_session(path: str | Path):
    """An ONNX Runtime session on the CPU for an exported model.

    Example:
        >>> session = onnx_session("model.onnx")  # doctest: +SKIP
        >>> logits = session.run(None, {"images": batch.numpy()})[0]  # doctest: +SKIP
    """
    import onnxruntime as ort

    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])

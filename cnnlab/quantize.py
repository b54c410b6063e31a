"""Post-training int8 quantization of an exported ONNX model, with size and accuracy before
and after.

Quantization stores weights (and, statically, activations) as 8-bit integers instead of
32-bit floats: about 4x smaller files and often faster CPU inference, for a small loss of
accuracy that you must measure, never assume. Two flavours:

- ``"dynamic"``: weights are int8; activation ranges are computed on the fly for every
  input. No calibration data is needed.
- ``"static"``: weights *and* activations are int8, with activation ranges fixed once from
  a calibration batch of real, preprocessed images. Usually the faster of the two for CNNs.

PyTorch's own ``torch.ao.quantization`` is deprecated (it moves to the separate torchao
project), so cnnlab quantizes the exported ONNX file with ONNX Runtime's tools, which is
also what you would deploy.

Example:
    >>> report = quantize_onnx("model.onnx", "model.int8.onnx", calibration)  # doctest: +SKIP
    >>> print(report)  # doctest: +SKIP
    static int8 model.int8.onnx: 4.6 MB -> 1.2 MB (3.9x smaller); top-1 agrees with float on
    98.4% of the check images, max |logit difference| 0.086; accuracy 48.35% -> 48.35%
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from .errors import CnnlabError
from .export import onnx_session

QuantMode = Literal["dynamic", "static"]


@dataclass(frozen=True)
class QuantizationReport:
    """What quantization did to size, outputs and (when measured) accuracy."""

    mode: str
    path: Path
    size_before: int
    size_after: int
    max_abs_diff: float
    agreement: float
    accuracy_before: float | None = None
    accuracy_after: float | None = None
    compared_on: str = "held-out images"  # or "the calibration images", when no others

    @property
    def compression(self) -> float:
        """How many times smaller the quantized file is."""
        return self.size_before / self.size_after

    def __str__(self) -> str:
        text = (f"{self.mode} int8 {self.path}: {self.size_before / 1e6:.1f} MB -> "
                f"{self.size_after / 1e6:.1f} MB ({self.compression:.1f}x smaller); "
                f"top-1 agrees with float on {self.agreement:.1%} of {self.compared_on}, "
                f"max |logit difference| {self.max_abs_diff:.3f}")  # fmt: skip
        if self.accuracy_before is not None and self.accuracy_after is not None:
            text += f"; accuracy {self.accuracy_before:.2%} -> {self.accuracy_after:.2%}"
        return text


def quantize_onnx(
    source: str | Path,
    target: str | Path,
    calibration: torch.Tensor,
    mode: QuantMode = "static",
    eval_loader: Iterable | None = None,
    per_channel: bool = True,
) -> QuantizationReport:
    """Quantize the ONNX model at ``source`` to int8, write it to ``target``, and compare.

    ``calibration`` is a batch of preprocessed images ``(N, C, H, W)``, a few hundred from
    the *training* set: static quantization fixes its activation ranges from them. With
    ``eval_loader`` (a loader of ``(images, labels)``), the accuracy of both files is
    measured, and their outputs are compared on its first images (as many as the
    calibration batch): images the calibration never saw. Without it, the comparison falls
    back on the calibration images, and the report says so (agreement there flatters
    static quantization).

    Example:
        >>> calibration = torch.stack([train_set[i][0] for i in range(256)])  # doctest: +SKIP
        >>> report = quantize_onnx("model.onnx", "model.int8.onnx", calibration,
        ...                        eval_loader=test_loader)  # doctest: +SKIP
    """
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quant_pre_process,
        quantize_dynamic,
        quantize_static,
    )

    source, target = Path(source), Path(target)
    if mode not in ("dynamic", "static"):
        raise ValueError(f"mode must be 'dynamic' or 'static', not {mode!r}.")
    if not source.is_file():
        raise FileNotFoundError(
            f"no ONNX model at {source}: export one first with cnnlab.export.export_onnx."
        )
    if calibration.dim() != 4 or len(calibration) == 0:
        raise CnnlabError(
            f"calibration must be a batch of images (N, C, H, W), got shape "
            f"{tuple(calibration.shape)}: stack a few hundred preprocessed training images, "
            "e.g. torch.stack([train_set[i][0] for i in range(256)])."
        )
    calibration = calibration.detach().to("cpu", torch.float32).contiguous()
    batches = [{"images": c.numpy()} for c in calibration.split(32)]

    class _Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._batches = iter(batches)

        def get_next(self) -> dict | None:
            return next(self._batches, None)

    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        prepared = Path(tmp) / "prepared.onnx"  # folded constants, shapes inferred
        quant_pre_process(source, prepared, skip_symbolic_shape=True)
        if mode == "static":
            quantize_static(prepared, target, _Reader(), quant_format=QuantFormat.QDQ,
                            per_channel=per_channel, activation_type=QuantType.QUInt8,
                            weight_type=QuantType.QInt8)  # fmt: skip
        else:
            quantize_dynamic(prepared, target, weight_type=QuantType.QInt8,
                             per_channel=per_channel)  # fmt: skip

    check, compared_on = calibration, "the calibration images"
    if eval_loader is not None:
        check, compared_on = _first_images(eval_loader, len(calibration)), "held-out images"
    before, after = onnx_logits(source, check), onnx_logits(target, check)
    accuracy_before = accuracy_after = None
    if eval_loader is not None:
        accuracy_before = onnx_accuracy(source, eval_loader)
        accuracy_after = onnx_accuracy(target, eval_loader)
    return QuantizationReport(
        mode=mode,
        path=target,
        size_before=source.stat().st_size,
        size_after=target.stat().st_size,
        max_abs_diff=float(np.abs(before - after).max()),
        agreement=float((before.argmax(1) == after.argmax(1)).mean()),
        accuracy_before=accuracy_before,
        accuracy_after=accuracy_after,
        compared_on=compared_on,
    )


def _first_images(loader: Iterable, count: int) -> torch.Tensor:
    taken, seen = [], 0
    for images, _ in loader:
        taken.append(images.detach().to("cpu", torch.float32))
        seen += len(images)
        if seen >= count:
            break
    return torch.cat(taken)[:count]


def onnx_logits(path: str | Path, images: torch.Tensor, batch_size: int = 256) -> np.ndarray:
    """Run the ONNX model at ``path`` on ``images`` with ONNX Runtime; returns the logits.

    Example:
        >>> onnx_logits("model.onnx", images).shape  # doctest: +SKIP
        (8, 10)
    """
    session = onnx_session(path)
    images = images.detach().to("cpu", torch.float32).contiguous()
    outputs = [session.run(None, {"images": chunk.numpy()})[0]
               for chunk in images.split(batch_size)]  # fmt: skip
    return np.concatenate(outputs)


def onnx_accuracy(path: str | Path, loader: Iterable) -> float:
    """Top-1 accuracy of the ONNX model at ``path`` over a loader of ``(images, labels)``.

    Example:
        >>> onnx_accuracy("model.int8.onnx", test_loader)  # doctest: +SKIP
        0.6093
    """
    session = onnx_session(path)
    correct = total = 0
    for images, labels in loader:
        images = images.detach().to("cpu", torch.float32).contiguous()
        logits = session.run(None, {"images": images.numpy()})[0]
        correct += int((logits.argmax(1) == torch.as_tensor(labels).cpu().numpy()).sum())
        total += len(labels)
    if total == 0:
        raise CnnlabError("the evaluation loader is empty: nothing to measure accuracy on.")
    return correct / total

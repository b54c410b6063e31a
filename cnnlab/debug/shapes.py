"""Trace the shape of a batch through a model, layer by layer."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from ..errors import InputShapeError


class ShapeTraceError(InputShapeError):
    """A layer failed on the shape it was given; the message names it and the fix."""


@dataclass(frozen=True)
class ShapeRow:
    name: str
    layer: str
    output_shape: tuple[int, ...]
    parameters: int
    trainable: bool


@dataclass
class ShapeTrace:
    """The layers a batch went through, with output shapes and parameter counts."""

    input_shape: tuple[int, ...]
    rows: list[ShapeRow] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        lines = [f"{'layer':<28} {'type':<18} {'output shape':<22} {'params':>10}  trains",
                 f"{'(input)':<28} {'':<18} {str(self.input_shape):<22}"]  # fmt: skip
        for r in self.rows:
            trains = ("yes" if r.trainable else "no") if r.parameters else "-"
            lines.append(f"{r.name:<28} {r.layer:<18} {str(r.output_shape):<22} "
                         f"{r.parameters:>10,}  {trains}")  # fmt: skip
        lines += [f"warning: {w}" for w in self.warnings]
        return "\n".join(lines)


def _expected_input(module: nn.Module) -> str | None:
    if isinstance(module, nn.Linear):
        return f"(N, {module.in_features})"
    if isinstance(module, nn.Conv2d):
        return f"(N, {module.in_channels}, H, W)"
    if isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)):
        return f"{module.num_features} channels/features"
    return None


def _hint(module: nn.Module, shape: tuple[int, ...]) -> str:
    if isinstance(module, nn.Linear) and shape:
        return (f" The flattened size is {shape[-1]}, not {module.in_features}: the input image "
                f"size changed. Set in_features={shape[-1]}, resize the images to the size the "
                "network was designed for, or put nn.AdaptiveAvgPool2d before the flatten so "
                "that any size works.")  # fmt: skip
    if isinstance(module, nn.Conv2d) and len(shape) == 4 and shape[-1] == module.in_channels:
        return " The batch looks channels-last (NHWC): use x.permute(0, 3, 1, 2)."
    return ""


@torch.no_grad()
def trace_shapes(
    model: nn.Module,
    input_shape: tuple[int, ...] = (1, 3, 32, 32),
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
) -> ShapeTrace:
    """Run a zero batch of ``input_shape`` through ``model`` and record every leaf layer.

    Raises :class:`ShapeTraceError` at the first layer that fails, naming it with the
    shape it expected and the shape it got. Warns when the batch dimension changes on the
    way (the sign of a ``view(-1, ...)`` with the wrong size).

    Example:
        >>> net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.Flatten(), nn.Linear(8 * 32 * 32, 10))
        >>> print(trace_shapes(net, (1, 3, 32, 32)))  # doctest: +NORMALIZE_WHITESPACE
        layer   type    output shape      params  trains
        (input)         (1, 3, 32, 32)
        0       Conv2d  (1, 8, 32, 32)       224  yes
        1       Flatten (1, 8192)              0  -
        2       Linear  (1, 10)           81,930  yes
        >>> trace_shapes(net, (1, 3, 64, 64))
        Traceback (most recent call last):
        ...
        cnnlab.debug.shapes.ShapeTraceError: layer '2' (Linear(in_features=8192, ...)) failed: expected input (N, 8192), got (1, 32768)...
    """
    trace = ShapeTrace(tuple(input_shape))
    names = {m: n for n, m in model.named_modules() if n and not list(m.children())}
    running: list[tuple[str, nn.Module, tuple[int, ...]]] = []

    def before(module, inputs):
        shape = tuple(inputs[0].shape) if inputs and isinstance(inputs[0], torch.Tensor) else ()
        running.append((names[module], module, shape))
        if shape and shape[0] != input_shape[0] and not any("batch" in w for w in trace.warnings):
            trace.warnings.append(
                f"the batch dimension changed from {input_shape[0]} to {shape[0]} before "
                f"'{names[module]}': a reshape such as x.view(-1, k) with the wrong k folds "
                "image features into the batch. Use x.flatten(1) or nn.Flatten()."
            )

    def after(module, _inputs, output):
        running.pop()
        shape = tuple(output.shape) if isinstance(output, torch.Tensor) else ()
        params = list(module.parameters(recurse=False))
        trace.rows.append(ShapeRow(names[module], type(module).__name__, shape,
                                   sum(p.numel() for p in params),
                                   any(p.requires_grad for p in params)))  # fmt: skip

    handles = []
    for module in names:
        handles.append(module.register_forward_pre_hook(before))
        handles.append(module.register_forward_hook(after))
    was_training = model.training
    model.eval()
    try:
        model(torch.zeros(input_shape, device=device, dtype=dtype))
    except (RuntimeError, ValueError) as error:
        if not running:
            raise
        name, module, shape = running[-1]
        expected = _expected_input(module)
        want = f" expected input {expected}," if expected else ""
        raise ShapeTraceError(
            f"layer '{name}' ({module}) failed:{want} got {shape}.{_hint(module, shape)}\n"
            f"PyTorch said: {error}\nLayers before it:\n{trace}"
        ) from error
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    return trace

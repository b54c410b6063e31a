"""Debugging tools: catch the common CNN mistakes before (or right after) they bite.
(TensorBoard logging of a run is the callback :class:`cnnlab.callbacks.TensorBoard`.)

- :func:`trace_shapes` -- every layer's output shape; names the layer that fails
- :func:`check_batch` -- layout, dtype, value range, labels, NaN/Inf, each with its fix
- :func:`overfit_one_batch` -- can the model learn at all?
- :func:`layer_stats` and :func:`find_nonfinite` -- gradients and activations per layer
- :func:`lr_find` -- the learning-rate range test
"""

from .batch import BatchReport, Problem, check_batch
from .lr_finder import LRFinderResult, lr_find
from .overfit import OverfitResult, overfit_one_batch
from .shapes import ShapeTrace, ShapeTraceError, trace_shapes
from .stats import LayerStats, NonFiniteError, find_nonfinite, layer_stats

__all__ = [
    "BatchReport",
    "LRFinderResult",
    "LayerStats",
    "NonFiniteError",
    "OverfitResult",
    "Problem",
    "ShapeTrace",
    "ShapeTraceError",
    "check_batch",
    "find_nonfinite",
    "layer_stats",
    "lr_find",
    "overfit_one_batch",
    "trace_shapes",
]

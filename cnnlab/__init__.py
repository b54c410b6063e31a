"""cnnlab: the small library behind the cnnlab course on convolutional neural networks.

Modules, one job each:

- :mod:`cnnlab.settings` -- environment switches (smoke run, offline), device, seeding
- :mod:`cnnlab.data` -- CIFAR-10 (real or stand-in), ImageFolder data, transforms, loaders
- :mod:`cnnlab.models` -- SimpleCNN, a small ResNet, FastNet; :mod:`cnnlab.summary` --
  parameter and MAC counts, layer tables; :mod:`cnnlab.registry` -- every network by name
- :mod:`cnnlab.engine` -- the training loop: ``train_one_epoch``, ``evaluate``, ``fit``
- :mod:`cnnlab.callbacks` -- checkpoints, early stopping, TensorBoard, unfreezing, Lookahead
- :mod:`cnnlab.metrics` -- predictions, confusion matrix, per-class accuracy
- :mod:`cnnlab.plots` -- image grids, learning curves, confusion matrices, mistakes;
  :mod:`cnnlab.fonts` -- Chinese labels in figures
- :mod:`cnnlab.checks` -- input and label checks with messages that say what to do
- :mod:`cnnlab.transfer` -- pretrained torchvision models, new heads, ImageNet predictions
- :mod:`cnnlab.freezing` -- freeze/unfreeze, layer groups, discriminative LRs, gradual unfreezing
- :mod:`cnnlab.finetune` -- fine-tuning strategies measured side by side
- :mod:`cnnlab.debug` -- shape traces, batch checks, overfit one batch, LR finder, TensorBoard
- :mod:`cnnlab.checkpoints` -- safe weights and training checkpoints that resume
- :mod:`cnnlab.export` -- TorchScript and ONNX export with parity checks
- :mod:`cnnlab.inference` -- top-k predictions with the stored preprocessing
- :mod:`cnnlab.quantize` -- int8 quantization of ONNX models, size and accuracy compared
- :mod:`cnnlab.serve` -- the FastAPI web API
- :mod:`cnnlab.cli` -- the ``cnnlab`` command (train, evaluate, predict, export, serve)
- :mod:`cnnlab.exercises` -- the notebooks' checked exercises: ``check``, ``hint``,
  ``solution``, ``progress()``
"""

from importlib.metadata import PackageNotFoundError, version

from .settings import choose, get_device, seed_everything

try:
    __version__ = version("cnnlab")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__", "choose", "get_device", "seed_everything"]

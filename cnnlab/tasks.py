"""What the ``cnnlab`` command does, as plain functions you can also call from Python:
train a model on CIFAR-10 or your own folder of photos, evaluate it, classify files,
export it, and classify images with ImageNet models.

Every model file holds its weights, its class names, how to rebuild the network, and its
:class:`~cnnlab.preprocessing.Preprocessing`, so each task prepares images exactly as
training evaluated them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils.data import Dataset

from . import settings
from .data import (
    load_cifar10,
    load_image_folder,
    make_loader,
    subset,
)
from .engine import EpochResult, History, evaluate, fit
from .errors import ConfigurationError, CorruptImageError, DataUnavailableError
from .images import MAX_PIXELS, decode_image
from .inference import Predictor
from .train_setup import make_recipe


def training_checkpoint(out: str | Path) -> Path:
    """The training checkpoint that ``train_model`` keeps next to the model file.

    Example:
        >>> training_checkpoint("models/m.pt").name
        'm-training.pt'
    """
    out = Path(out)
    return out.with_name(out.stem + "-training.pt")


def _split_folder(folder: Path, split: str, required: bool) -> Path | None:
    if (folder / split).is_dir():
        return folder / split
    if required:
        other = "test" if split == "train" else "train"
        raise DataUnavailableError(
            f"{folder} has no {split}/ folder{f' beside its {other}/' if (folder / other).is_dir() else ''}: "
            f"training needs {folder}/train/<class>/... and {folder}/test/<class>/... Split "
            "one folder of classes into two (for example 80% / 20% of each class's images)."
        )
    return None


def evaluation_images(folder: str | Path, transform, *, skip_corrupt: bool = False,
                max_pixels: int | None = MAX_PIXELS) -> Dataset:  # fmt: skip
    """The images to evaluate on in ``folder``: its ``test/`` split, or the folder itself
    when it holds class folders directly (no ``train/`` needed).

    Example:
        >>> test_set = evaluation_images("my_photos", Preprocessing(224).transform())  # doctest: +SKIP
    """
    folder = Path(folder)
    split = _split_folder(folder, "test", required=False) or folder
    return load_image_folder(split, transform, skip_corrupt=skip_corrupt, max_pixels=max_pixels)


def check_classes(data_classes, model_classes, where: str) -> None:
    """Refuse data whose classes are not the model's, naming both lists.

    Example:
        >>> check_classes(["cat", "dog"], ["cat", "dog"], "here")
        >>> check_classes(["cat", "fox"], ["cat", "dog"], "my_photos/test")
        Traceback (most recent call last):
        ...
        cnnlab.errors.ConfigurationError: my_photos/test has the classes ['cat', 'fox'], but the model ...
    """
    if list(data_classes) != list(model_classes):
        raise ConfigurationError(
            f"{where} has the classes {list(data_classes)}, but the model was trained on "
            f"{list(model_classes)} (in that order): an accuracy on it would be meaningless. "
            "Evaluate on data with the model's classes, or train a model on these."
        )


@dataclass
class TrainResult:
    """What :func:`train_model` produced."""

    model_file: Path
    checkpoint: Path
    history: History
    predictor: Predictor


def train_model(
    out: str | Path,
    *,
    folder: str | Path | None = None,
    arch: str = "SimpleCNN",
    epochs: int = 10,
    lr: float | None = None,
    batch_size: int = 128,
    size: int | None = None,
    strategy: str = "frozen",
    seed: int = 0,
    resume: bool = False,
    overwrite: bool = False,
    skip_corrupt: bool = False,
    max_pixels: int | None = MAX_PIXELS,
    device: str | torch.device | None = None,
    progress: bool = True,
) -> TrainResult:
    """Train on CIFAR-10 (following the ``CNNLAB_*`` switches) or on ``folder``'s
    ``train/`` and ``test/`` image folders, and save a model file at ``out``.

    A training checkpoint is written after every epoch next to ``out``
    (:func:`training_checkpoint`); ``resume=True`` continues it after an interruption.
    Neither file is ever overwritten unasked: when one exists, pass ``resume=True`` or
    ``overwrite=True``. Photos are trained with random resized crops of the whole photo
    and evaluated resized and centre-cropped, at the same size, and saved with that
    preprocessing (see :func:`make_recipe`). Under ``torchrun`` every process trains on
    its shard (:mod:`cnnlab.distributed`) and rank 0 writes the files; ``batch_size`` is
    per process.

    Example:
        >>> result = train_model("models/flowers.pt", folder="flowers", arch="resnet18",
        ...                      epochs=5)  # doctest: +SKIP
    """
    from .callbacks import ModelCheckpoint

    out = Path(out)
    checkpoint = training_checkpoint(out)
    existing = [p for p in (out, checkpoint) if p.exists()]
    if existing and not (resume or overwrite):
        raise ConfigurationError(
            f"{' and '.join(map(str, existing))} already exist{'s' if len(existing) == 1 else ''} "
            "from an earlier run, which this one would overwrite: add --resume to continue "
            "that run from its checkpoint, or --overwrite to start again and replace it "
            "(or choose another --out)."
        )
    if resume and overwrite:
        raise ConfigurationError("--resume continues the earlier run and --overwrite replaces "
                                 "it: choose one.")  # fmt: skip
    from . import distributed

    device = distributed.setup() if distributed.launched_by_torchrun() else device
    settings.seed_everything(seed)
    if folder is not None:
        folder = Path(folder)
        train_dir = _split_folder(folder, "train", required=True)
        test_dir = _split_folder(folder, "test", required=True)
        probe = load_image_folder(train_dir, max_pixels=max_pixels)
        classes = list(probe.classes)
    else:
        classes = list(load_cifar10(False).classes)
    recipe = make_recipe(arch, len(classes), photos=folder is not None, size=size, lr=lr,
                         epochs=epochs, strategy=strategy)  # fmt: skip
    eval_tf = recipe.preprocessing.transform()
    if folder is not None:
        train_set = load_image_folder(train_dir, recipe.train_transform, skip_corrupt=skip_corrupt,
                                      max_pixels=max_pixels)  # fmt: skip
        test_set = load_image_folder(test_dir, eval_tf, skip_corrupt=skip_corrupt,
                                     max_pixels=max_pixels)  # fmt: skip
        check_classes(test_set.classes, classes, str(test_dir))
    else:
        train_set, test_set = (
            load_cifar10(True, recipe.train_transform),
            load_cifar10(False, eval_tf),
        )
    train_set = subset(train_set, settings.choose(None, 512))
    test_set = subset(test_set, settings.choose(None, 256))
    train_loader = make_loader(train_set, batch_size, shuffle=True, seed=seed,
                               drop_last=len(train_set) > batch_size)  # fmt: skip
    callbacks = [*recipe.callbacks, ModelCheckpoint(checkpoint, resume=resume, overwrite=overwrite)]
    history = fit(recipe.model, train_loader, make_loader(test_set, 256), epochs=epochs,
                  optimizer=recipe.optimizer, precision="auto", device=device,
                  callbacks=callbacks, progress=progress)  # fmt: skip
    predictor = Predictor(recipe.model, classes, recipe.preprocessing, max_pixels=max_pixels)
    if distributed.is_main_process():
        predictor.save(out, recipe.spec)
    distributed.barrier()  # the file exists for every process before any goes on
    return TrainResult(out, checkpoint, history, predictor)


def evaluate_model(model_file: str | Path, folder: str | Path | None = None, *,
                   skip_corrupt: bool = False, max_pixels: int | None = MAX_PIXELS,
                   progress: bool = True) -> EpochResult:  # fmt: skip
    """Test loss and accuracy of a model file, on ``folder`` (its ``test/`` split, or the
    folder itself) or on the CIFAR-10 test split. Data with other classes is refused.

    Example:
        >>> print(evaluate_model("models/flowers.pt", "flowers"))  # doctest: +SKIP
        loss 0.4123, accuracy 88.20% on 1,020 images
    """
    predictor = Predictor.load(model_file, max_pixels=max_pixels)
    transform = predictor.preprocessing.transform()
    if folder is not None:
        test_set = evaluation_images(
            folder, transform, skip_corrupt=skip_corrupt, max_pixels=max_pixels
        )
        where = str(test_set.root)
    else:
        test_set, where = load_cifar10(False, transform), "the CIFAR-10 test split"
    check_classes(test_set.classes, predictor.class_names, where)
    test_set = subset(test_set, settings.choose(None, 256))
    return evaluate(predictor.model, make_loader(test_set, 256), progress=progress)


@dataclass
class Prediction:
    """One file's top-k classes, or why it could not be read."""

    path: str
    top: list[tuple[str, float]] | None = None
    error: str | None = None


def _predict_each(predictor: Predictor, images, k: int) -> list[Prediction]:
    """One Prediction per image, in order; an unreadable image gets its error, not a raise."""
    results = []
    for image in images:
        try:
            results.append(Prediction(str(image), top=predictor.predict(Path(image), k=k)))
        except CorruptImageError as error:
            results.append(Prediction(str(image), error=str(error)))
    return results


def predict_files(model_file: str | Path, images: list[str | Path], k: int = 5,
                  max_pixels: int | None = MAX_PIXELS) -> list[Prediction]:  # fmt: skip
    """Top-``k`` classes for every image file; a file that cannot be read gets its error
    instead, and the others are still classified.

    Example:
        >>> for p in predict_files("m.pt", ["cat.jpg", "notes.txt"]):  # doctest: +SKIP
        ...     print(p.path, p.top or p.error)
    """
    predictor = Predictor.load(model_file, max_pixels=max_pixels)
    return _predict_each(predictor, images, k)


def export_model(model_file: str | Path, *, format: str = "onnx", out: str | Path | None = None,
                 quantize: str | None = None, folder: str | Path | None = None,
                 skip_corrupt: bool = False) -> list:  # fmt: skip
    """Export a model file to ONNX (with its class names and preprocessing in the file's
    metadata) or TorchScript, checked on real test images; optionally an int8 copy of the
    ONNX file, with size and accuracy compared. Returns the reports.

    Example:
        >>> for report in export_model("m.pt", quantize="static"):  # doctest: +SKIP
        ...     print(report)
    """
    from .export import export_onnx, export_torchscript

    if quantize and format != "onnx":
        raise ConfigurationError("--quantize works on ONNX exports: add --format onnx.")
    predictor = Predictor.load(model_file)
    transform = predictor.preprocessing.transform()
    if folder is not None:
        test_set = evaluation_images(folder, transform, skip_corrupt=skip_corrupt)
        train_dir = _split_folder(Path(folder), "train", required=False)
        calibration_set = load_image_folder(train_dir, transform, skip_corrupt=skip_corrupt) \
            if train_dir else test_set  # fmt: skip
        check_classes(test_set.classes, predictor.class_names, str(test_set.root))
    else:
        test_set, calibration_set = load_cifar10(False, transform), load_cifar10(True, transform)
        check_classes(test_set.classes, predictor.class_names, "the CIFAR-10 test split")
    example = torch.stack([test_set[i][0] for i in range(min(8, len(test_set)))])
    target = (
        Path(out) if out else Path(model_file).with_suffix(".onnx" if format == "onnx" else ".ts")
    )
    if format == "onnx":
        metadata = {"cnnlab.class_names": predictor.class_names,
                    "cnnlab.preprocessing": predictor.preprocessing.as_dict()}  # fmt: skip
        reports = [export_onnx(predictor.model, target, example, metadata=metadata)]
    else:
        reports = [export_torchscript(predictor.model, target, example)]
    if quantize:
        from .quantize import quantize_onnx

        count = min(256, len(calibration_set))
        calibration = torch.stack([calibration_set[i][0] for i in range(count)])
        test_loader = make_loader(subset(test_set, settings.choose(None, 256)), 256)
        quantized = target.with_name(f"{target.stem}.{quantize}-int8.onnx")
        reports.append(quantize_onnx(target, quantized, calibration, mode=quantize,
                                     eval_loader=test_loader))  # fmt: skip
    return reports


def classify_images(images: list[str | Path], arch: str = "resnet18", k: int = 5,
                    max_pixels: int | None = MAX_PIXELS) -> dict[str, list[Prediction]]:  # fmt: skip
    """Top-``k`` ImageNet classes of each image with a pretrained torchvision model, each
    architecture with its own preprocessing (299 px for Inception v3); ``arch="all"``
    runs the source tutorials' seven and the others cnnlab offers. With
    ``CNNLAB_OFFLINE=1`` the weights are random and a banner says so.

    Example:
        >>> classify_images(["grace_hopper.jpg"], "inception_v3")  # doctest: +SKIP
        {'inception_v3': [Prediction(path='grace_hopper.jpg', top=[('military uniform', 0.83), ...])]}
    """
    from .transfer import (
        ARCHITECTURES,
        SOURCE_ARCHITECTURES,
        build_transfer_model,
        imagenet_categories,
    )

    archs = [*SOURCE_ARCHITECTURES, *(a for a in ARCHITECTURES if a not in SOURCE_ARCHITECTURES)] \
        if arch == "all" else [arch]  # fmt: skip
    results: dict[str, list[Prediction]] = {}
    for name in archs:
        tm = build_transfer_model(name, num_classes=None)
        predictor = Predictor(tm.model, imagenet_categories(tm.weights),
                              tm.preprocessing, max_pixels=max_pixels)  # fmt: skip
        del tm
        results[name] = _predict_each(predictor, images, k)
    return results


__all__ = [
    "Prediction",
    "TrainResult",
    "check_classes",
    "classify_images",
    "decode_image",
    "evaluate_model",
    "export_model",
    "make_recipe",
    "predict_files",
    "evaluation_images",
    "train_model",
    "training_checkpoint",
]

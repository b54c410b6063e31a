"""The ``cnnlab`` command: train, evaluate, predict, export, serve and classify from a
terminal. The work is done by :mod:`cnnlab.tasks`; this module parses and prints.

cnnlab train --epochs 10 --out models/simplecnn.pt      # CIFAR-10 (switches apply)
cnnlab train --folder my_photos --arch resnet18 --out models/photos.pt
cnnlab evaluate models/photos.pt --folder my_photos     # its test/ (or the folder itself)
cnnlab predict models/photos.pt cat.jpg dog.png
cnnlab export models/simplecnn.pt --format onnx --quantize static
cnnlab serve models/simplecnn.pt                        # http://127.0.0.1:8000
cnnlab classify photo.jpg --arch all                    # ImageNet top-5, seven models

cnnlab's own errors (a missing folder, a broken image, a refused checkpoint, a model
that would be overwritten) are printed as one line on stderr with the fix, and the
command exits with status 2; ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback

from .errors import CnnlabError, plain_text
from .images import MAX_PIXELS


def _line(error: object) -> str:
    """An error as one line, without terminal colour codes. An error re-raised from a
    DataLoader worker carries the worker's whole traceback: only the original message is
    kept (the traceback is what --debug is for)."""
    text = plain_text(error)
    if "Original Traceback (most recent call last):" in text and isinstance(error, BaseException):
        name = f"{type(error).__module__}.{type(error).__qualname__}: "
        start = text.rfind(name)
        text = text[start + len(name) :] if start >= 0 else text.splitlines()[-1]
    return " ".join(part.strip() for part in text.splitlines() if part.strip())


def cmd_train(args) -> int:
    """Train a model and save it with its class names and preprocessing; a training
    checkpoint is kept next to it after every epoch (continue with --resume)."""
    from . import distributed
    from .tasks import train_model

    try:
        result = train_model(args.out, folder=args.folder, arch=args.arch, epochs=args.epochs,
                             lr=args.lr, batch_size=args.batch_size, size=args.size,
                             strategy=args.strategy, seed=args.seed, resume=args.resume,
                             overwrite=args.overwrite, skip_corrupt=args.skip_corrupt,
                             max_pixels=args.max_pixels)  # fmt: skip
    except BaseException:
        distributed.cleanup(wait=False)  # the others may never arrive: do not wait for them
        raise
    distributed.cleanup()  # under torchrun: wait for all, leave the group (else a no-op)
    if distributed.launched_by_torchrun() and os.environ.get("RANK") != "0":
        return 0  # only rank 0 reports
    print(result.history)
    pre = result.predictor.preprocessing
    print(f"saved {result.model_file}: {args.arch}, {len(result.predictor.class_names)} classes, "
          f"{pre.size} px; resumable training state in {result.checkpoint}")  # fmt: skip
    return 0


def cmd_evaluate(args) -> int:
    """Accuracy of a saved model on --folder (its test/ split, or the folder itself) or on
    the CIFAR-10 test split; data with other classes than the model's is refused."""
    from . import settings
    from .tasks import evaluate_model

    result = evaluate_model(args.model_file, args.folder, skip_corrupt=args.skip_corrupt,
                            max_pixels=args.max_pixels)  # fmt: skip
    print(settings.smoke_note(f"test accuracy {result.accuracy:.2%} on {result.samples:,} "
                              f"images, loss {result.loss:.4f}"))  # fmt: skip
    return 0


def _print_predictions(rows, prefix: str = "") -> int:
    failures = 0
    for row in rows:
        if row.error is not None:
            print(f"{prefix}{row.path}: {_line(row.error)}", file=sys.stderr)
            failures += 1
        else:
            print(f"{prefix}{row.path}: " + ", ".join(f"{n} {p:.1%}" for n, p in row.top))
    if failures:
        print(f"{failures} of {len(rows)} image(s) could not be read (see above); the others "
              "were classified.", file=sys.stderr)  # fmt: skip
    return 1 if failures else 0


def cmd_predict(args) -> int:
    """Top-k classes for each image file; unreadable files are reported and skipped
    (exit status 1 when any was)."""
    from .tasks import predict_files

    return _print_predictions(predict_files(args.model_file, args.images, args.k, args.max_pixels))


def cmd_classify(args) -> int:
    """Top-5 ImageNet classes of each image with pretrained torchvision models, each with
    its own preprocessing; --arch all compares the source tutorials' seven and more."""
    from .tasks import classify_images

    results = classify_images(args.images, args.arch, args.k, args.max_pixels)
    status = 0
    for arch, rows in results.items():
        if len(results) > 1:
            print(f"== {arch}")
        status |= _print_predictions(rows, prefix="  " if len(results) > 1 else "")
    return status


def cmd_export(args) -> int:
    """Export to ONNX or TorchScript with a parity check on real test images; optionally
    quantize the ONNX file to int8 and report size and accuracy before and after."""
    from .tasks import export_model

    for report in export_model(args.model_file, format=args.format, out=args.out,
                               quantize=args.quantize, folder=args.folder,
                               skip_corrupt=args.skip_corrupt):  # fmt: skip
        print(report)
    return 0


def cmd_serve(args) -> int:
    """Serve the model over HTTP (bound to 127.0.0.1 unless --host says otherwise)."""
    import uvicorn

    from .inference import Predictor
    from .serve import create_app

    predictor = Predictor.load(args.model_file, max_pixels=args.max_pixels)
    app = create_app(predictor, max_bytes=args.max_bytes, max_pixels=args.max_pixels,
                     max_concurrent=args.max_concurrent)  # fmt: skip
    print(f"serving {args.model_file} on http://{args.host}:{args.port}  (docs: /docs)")
    uvicorn.run(app, host=args.host, port=args.port)
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser, with a subcommand per task (each has --help).

    Example:
        >>> build_parser().parse_args(["predict", "m.pt", "a.jpg"]).k
        5
    """
    from .finetune import STRATEGIES
    from .registry import model_names, torchvision_architectures

    parser = argparse.ArgumentParser(prog="cnnlab", description="Train, evaluate, export and "
                                     "serve CNN image classifiers.")  # fmt: skip
    parser.add_argument("--debug", action="store_true",
                        help="show the full traceback of an error instead of one line")  # fmt: skip
    sub = parser.add_subparsers(dest="command", required=True)

    def folder_option(p, help_text):
        p.add_argument("--folder", help=help_text)

    def image_options(p, skip=True):
        p.add_argument("--max-pixels", type=int, default=MAX_PIXELS,
                       help="refuse images declaring more pixels (default %(default)s)")  # fmt: skip
        if skip:
            p.add_argument("--skip-corrupt", action="store_true",
                           help="leave unreadable images out of a folder (with a warning)")  # fmt: skip

    p = sub.add_parser("train", help="train a model and save it", description=cmd_train.__doc__)
    folder_option(p, "a folder with train/ and test/ image folders, one sub-folder per class "
                     "(default: CIFAR-10, following the CNNLAB_* switches)")  # fmt: skip
    p.add_argument("--arch", "--model", dest="arch", choices=model_names(),
                   default="SimpleCNN", help="a cnnlab model trained from scratch, or a "
                   "torchvision architecture fine-tuned from ImageNet weights")  # fmt: skip
    p.add_argument("--strategy", choices=tuple(STRATEGIES), default="frozen",
                   help="fine-tuning strategy for a torchvision architecture (notebook 04)")  # fmt: skip
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--lr", type=float, help="learning rate (default 1e-3)")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--size", type=int, help="image side in pixels (default: 32 for CIFAR-10, "
                   "64 for photos with a cnnlab model, the weights' own for torchvision)")  # fmt: skip
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="models/model.pt", help="where to save the model")
    p.add_argument("--resume", action="store_true",
                   help="continue from the training checkpoint next to --out")  # fmt: skip
    p.add_argument("--overwrite", action="store_true",
                   help="start again, replacing the model and checkpoint at --out")  # fmt: skip
    image_options(p)
    p.set_defaults(run=cmd_train)

    p = sub.add_parser("evaluate", help="test accuracy of a saved model",
                       description=cmd_evaluate.__doc__)  # fmt: skip
    p.add_argument("model_file")
    folder_option(p, "a folder with a test/ split, or of class folders (default: CIFAR-10)")
    image_options(p)
    p.set_defaults(run=cmd_evaluate)

    p = sub.add_parser("predict", help="classify image files", description=cmd_predict.__doc__)
    p.add_argument("model_file")
    p.add_argument("images", nargs="+")
    p.add_argument("-k", type=int, default=5, help="how many classes to show")
    image_options(p, skip=False)
    p.set_defaults(run=cmd_predict)

    p = sub.add_parser("classify", help="ImageNet classes with pretrained models",
                       description=cmd_classify.__doc__)  # fmt: skip
    p.add_argument("images", nargs="+")
    p.add_argument("--arch", choices=("all", *torchvision_architectures()), default="resnet18")
    p.add_argument("-k", type=int, default=5, help="how many classes to show")
    image_options(p, skip=False)
    p.set_defaults(run=cmd_classify)

    p = sub.add_parser("export", help="export to ONNX or TorchScript",
                       description=cmd_export.__doc__)  # fmt: skip
    p.add_argument("model_file")
    p.add_argument("--format", choices=("onnx", "torchscript"), default="onnx")
    p.add_argument("--out", help="output file (default: next to the model)")
    p.add_argument("--quantize", choices=("dynamic", "static"),
                   help="also write an int8 copy of the ONNX file and compare accuracy")  # fmt: skip
    folder_option(p, "test images (and train/ for calibration) with the model's classes "
                     "(default: CIFAR-10)")  # fmt: skip
    p.add_argument("--skip-corrupt", action="store_true",
                   help="leave unreadable images out of the folder (with a warning)")  # fmt: skip
    p.set_defaults(run=cmd_export)

    p = sub.add_parser("serve", help="serve the model over HTTP", description=cmd_serve.__doc__)
    p.add_argument("model_file")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to bind (default: only this machine)")  # fmt: skip
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--max-bytes", type=int, default=5 * 1024 * 1024, help="largest upload")
    p.add_argument("--max-concurrent", type=int, default=2,
                   help="images decoded and classified at once (bounds memory)")  # fmt: skip
    image_options(p, skip=False)
    p.set_defaults(run=cmd_serve)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``cnnlab`` console script: 0 on success, 1 when some images
    could not be read, 2 on an error (printed as one line: what went wrong, and the fix).

    Example:
        >>> main(["predict", "no-such-model.pt", "cat.jpg"])  # doctest: +SKIP
        cnnlab: error: no-such-model.pt is no file, not a checkpoint: check the path ...
        2
    """
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except (CnnlabError, OSError) as error:
        if args.debug:
            traceback.print_exc()
        else:
            print(f"cnnlab: error: {_line(error)} (--debug shows the traceback)", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("cnnlab: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

"""The ``cnnlab`` command: train, evaluate, predict, export and serve from a terminal.

cnnlab train --epochs 10 --out models/simplecnn.pt      # CIFAR-10 (switches apply)
cnnlab train --folder my_photos --model SmallResNet     # your own train/ and test/
cnnlab evaluate models/simplecnn.pt
cnnlab predict models/simplecnn.pt cat.jpg dog.png
cnnlab export models/simplecnn.pt --format onnx --quantize static
cnnlab serve models/simplecnn.pt                        # http://127.0.0.1:8000
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

MODELS = ("SimpleCNN", "SmallResNet")


def _datasets(args, train_transform, eval_transform):
    from .data import load_cifar10, load_image_folder

    if args.folder:
        root = Path(args.folder)
        return (load_image_folder(root / "train", transform=train_transform),
                load_image_folder(root / "test", transform=eval_transform))  # fmt: skip
    return (load_cifar10(True, train_transform), load_cifar10(False, eval_transform))


def cmd_train(args) -> int:
    """Train a model and save it with its class names and preprocessing."""
    import torch

    from . import seed_everything
    from .callbacks import ModelCheckpoint
    from .data import CIFAR10_MEAN, CIFAR10_STD, make_loader, subset
    from .data.transforms import cifar10_train_transform
    from .engine import fit
    from .inference import Predictor, Preprocessing, build_model
    from .settings import choose

    seed_everything(args.seed)
    pre = Preprocessing(args.size, CIFAR10_MEAN, CIFAR10_STD)
    train_tf = cifar10_train_transform() if args.size == 32 else pre.transform()
    train_set, test_set = _datasets(args, train_tf, pre.transform())
    train_set, test_set = subset(train_set, choose(None, 512)), subset(test_set, choose(None, 256))
    classes = list(getattr(train_set, "classes", None) or train_set.dataset.classes)
    kwargs = {"num_classes": len(classes)}
    if args.model == "SimpleCNN":
        kwargs["input_size"] = args.size
    spec = {"name": args.model, "kwargs": kwargs}
    model = build_model(spec)
    train_loader = make_loader(train_set, args.batch_size, shuffle=True, seed=args.seed,
                               drop_last=True)  # fmt: skip
    out = Path(args.out)
    checkpoint = out.with_name(out.stem + "-training.pt")
    history = fit(model, train_loader, make_loader(test_set, 256), epochs=args.epochs,
                  optimizer=torch.optim.Adam(model.parameters(), lr=args.lr),
                  precision="auto",
                  callbacks=[ModelCheckpoint(checkpoint, resume=args.resume, overwrite=True)])  # fmt: skip
    print(history)
    Predictor(model, classes, pre).save(out, spec)
    print(f"saved {out} (weights, {len(classes)} class names, preprocessing); "
          f"resumable training state in {checkpoint}")  # fmt: skip
    return 0


def cmd_evaluate(args) -> int:
    """Accuracy of a saved model on the test split."""
    from .data import make_loader
    from .engine import evaluate
    from .inference import Predictor

    predictor = Predictor.load(args.model_file)
    _, test_set = _datasets(args, None, predictor.preprocessing.transform())
    result = evaluate(predictor.model, make_loader(test_set, 256), progress=True)
    print(
        f"test accuracy {result.accuracy:.2%} on {result.samples:,} images, loss {result.loss:.4f}"
    )
    return 0


def cmd_predict(args) -> int:
    """Top-k classes for each image file."""
    from .errors import CorruptImageError
    from .inference import Predictor

    predictor = Predictor.load(args.model_file)
    failures = 0
    for image in args.images:
        try:
            top = predictor.predict(Path(image), k=args.k)
        except CorruptImageError as error:
            print(f"{image}: {error}", file=sys.stderr)
            failures += 1
            continue
        print(f"{image}: " + ", ".join(f"{name} {p:.1%}" for name, p in top))
    return 1 if failures else 0


def cmd_export(args) -> int:
    """Export to ONNX or TorchScript with a parity check on real test images; optionally
    quantize the ONNX file to int8 and report size and accuracy before and after."""
    import torch

    from .data import make_loader, subset
    from .export import export_onnx, export_torchscript
    from .inference import Predictor
    from .settings import choose

    if args.quantize and args.format != "onnx":
        raise SystemExit("--quantize works on ONNX exports: add --format onnx.")
    predictor = Predictor.load(args.model_file)
    transform = predictor.preprocessing.transform()
    train_set, test_set = _datasets(args, transform, transform)
    example = torch.stack([test_set[i][0] for i in range(min(8, len(test_set)))])
    suffix = ".onnx" if args.format == "onnx" else ".ts"
    out = Path(args.out) if args.out else Path(args.model_file).with_suffix(suffix)
    export = export_onnx if args.format == "onnx" else export_torchscript
    print(export(predictor.model, out, example))
    if args.quantize:
        from .quantize import quantize_onnx

        count = min(256, len(train_set))
        calibration = torch.stack([train_set[i][0] for i in range(count)])
        test_loader = make_loader(subset(test_set, choose(None, 256)), 256)
        target = out.with_name(f"{out.stem}.{args.quantize}-int8.onnx")
        print(quantize_onnx(out, target, calibration, mode=args.quantize,
                            eval_loader=test_loader))  # fmt: skip
    return 0


def cmd_serve(args) -> int:
    """Serve the model over HTTP (bound to 127.0.0.1 unless --host says otherwise)."""
    import uvicorn

    from .inference import Predictor
    from .serve import create_app

    app = create_app(Predictor.load(args.model_file), max_bytes=args.max_bytes)
    print(f"serving {args.model_file} on http://{args.host}:{args.port}  (docs: /docs)")
    uvicorn.run(app, host=args.host, port=args.port)
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser, with a subcommand per task (each has --help).

    Example:
        >>> build_parser().parse_args(["predict", "m.pt", "a.jpg"]).k
        5
    """
    parser = argparse.ArgumentParser(prog="cnnlab", description="Train, evaluate, export and "
                                     "serve CNN image classifiers.")  # fmt: skip
    sub = parser.add_subparsers(dest="command", required=True)

    def data_options(p):
        p.add_argument("--folder", help="a folder with train/ and test/ ImageFolder trees "
                       "(default: CIFAR-10, following the CNNLAB_* switches)")  # fmt: skip

    p = sub.add_parser("train", help="train a model and save it", description=cmd_train.__doc__)
    data_options(p)
    p.add_argument("--model", choices=MODELS, default="SimpleCNN")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--size", type=int, default=32, help="image side in pixels")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="models/model.pt", help="where to save the model")
    p.add_argument("--resume", action="store_true",
                   help="continue from the training checkpoint next to --out")  # fmt: skip
    p.set_defaults(run=cmd_train)

    p = sub.add_parser("evaluate", help="test accuracy of a saved model",
                       description=cmd_evaluate.__doc__)  # fmt: skip
    p.add_argument("model_file")
    data_options(p)
    p.set_defaults(run=cmd_evaluate)

    p = sub.add_parser("predict", help="classify image files", description=cmd_predict.__doc__)
    p.add_argument("model_file")
    p.add_argument("images", nargs="+")
    p.add_argument("-k", type=int, default=5, help="how many classes to show")
    p.set_defaults(run=cmd_predict)

    p = sub.add_parser("export", help="export to ONNX or TorchScript",
                       description=cmd_export.__doc__)  # fmt: skip
    p.add_argument("model_file")
    p.add_argument("--format", choices=("onnx", "torchscript"), default="onnx")
    p.add_argument("--out", help="output file (default: next to the model)")
    p.add_argument("--quantize", choices=("dynamic", "static"),
                   help="also write an int8 copy of the ONNX file and compare accuracy")  # fmt: skip
    data_options(p)
    p.set_defaults(run=cmd_export)

    p = sub.add_parser("serve", help="serve the model over HTTP", description=cmd_serve.__doc__)
    p.add_argument("model_file")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to bind (default: only this machine)")  # fmt: skip
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--max-bytes", type=int, default=5 * 1024 * 1024, help="largest upload")
    p.set_defaults(run=cmd_serve)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``cnnlab`` console script."""
    args = build_parser().parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())

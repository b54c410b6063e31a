"""Checked exercises of notebook 08 (your own photos): opening a phone photo upright in
RGB, and a training transform for photos of any size."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .base import Exercise, LearnerError, Result, call, wrong


def _photos(folder: Path) -> dict[str, Path]:
    from ..data import save_sideways  # noqa: PLC0415

    upright = Image.new("RGB", (60, 90), (200, 30, 30))
    upright.paste((30, 30, 200), (0, 0, 60, 20))  # blue at the top
    paths = {
        "sideways": folder / "phone.jpg",
        "rgba": folder / "logo.png",
        "grey": folder / "scan.png",
    }
    save_sideways(upright, paths["sideways"])
    Image.new("RGBA", (40, 30), (0, 128, 0, 128)).save(paths["rgba"])
    Image.new("L", (30, 40), 128).save(paths["grey"])
    return paths


def _check_load(answer) -> Result:
    if not callable(answer):
        return wrong("answer with your function itself (load_photo), not its result")
    with tempfile.TemporaryDirectory() as folder:
        paths = _photos(Path(folder))
        loaded = {k: call(answer, p, what="your load_photo") for k, p in paths.items()}
        loaded = {k: v.copy() if isinstance(v, Image.Image) else v for k, v in loaded.items()}
    if any(isinstance(v, np.ndarray) for v in loaded.values()):
        return wrong("load_photo returned a NumPy array (cv2.imread's BGR order?); return a "
                     "PIL image in RGB, which torchvision's transforms take")  # fmt: skip
    if not all(isinstance(v, Image.Image) for v in loaded.values()):
        return wrong("return a PIL image (Image.open(...), then what it needs)")
    if loaded["sideways"].size == (90, 60):
        return wrong("the phone photo is lying on its side: the file says how to turn it (its "
                     "EXIF orientation); apply it with ImageOps.exif_transpose")  # fmt: skip
    modes = {k: v.mode for k, v in loaded.items() if v.mode != "RGB"}
    if modes:
        return wrong(f"not every photo is RGB ({', '.join(f'{k}: {m}' for k, m in modes.items())}): "
                     "convert('RGB') turns grayscale and transparent images into three channels")  # fmt: skip
    top = np.asarray(loaded["sideways"])[5, 30]
    if not top[2] > top[0]:
        return wrong("the photo is upright but upside down or mirrored: use "
                     "ImageOps.exif_transpose rather than rotating by hand")  # fmt: skip
    return Result(True, "upright and RGB whatever the file: what cnnlab.images.decode_image "
                        "does for every cnnlab loader.")  # fmt: skip


def _check_transform(answer) -> Result:
    if not callable(answer):
        return wrong("answer with a transform (a callable that takes a PIL image)")
    photos = [
        Image.new("RGB", size, (90, 140, 60)) for size in ((640, 480), (480, 640), (180, 150))
    ]
    shapes = []
    for photo in photos:
        try:
            out = call(answer, photo, what="your transform")
        except LearnerError as error:
            if "crop size" in str(error) and "larger than input image" in str(error):
                return wrong("a crop of 224 pixels cannot be cut out of a 180 x 150 photo: "
                             "RandomResizedCrop(224) takes a part of the photo and resizes "
                             "it, so it works at any size")  # fmt: skip
            raise
        if not isinstance(out, torch.Tensor):
            return wrong("the transform must end with a tensor: add ToTensor() and Normalize")
        shapes.append(tuple(out.shape))
    if len(set(shapes)) > 1 or shapes[0][1] != shapes[0][2]:
        return wrong(f"the outputs are {sorted(set(shapes))}: Resize(224) keeps each photo's "
                     "shape, so a batch cannot be stacked. RandomResizedCrop(224) gives "
                     "224 x 224 from any photo")  # fmt: skip
    if shapes[0] != (3, 224, 224):
        return wrong(f"the outputs are {shapes[0]}; the network expects (3, 224, 224)")
    return Result(True, "224 x 224 from landscape, portrait and small photos alike.")


q1 = Exercise(
    "08", 1, "open a phone photo upright, in RGB", _check_load,
    hint_text="PIL's ImageOps.exif_transpose applies the orientation tag; .convert('RGB') "
    "handles grayscale and transparency.",
    solution_code="""from PIL import Image, ImageOps

def load_photo(path):
    with Image.open(path) as image:
        return ImageOps.exif_transpose(image).convert("RGB")""",
)  # fmt: skip
q2 = Exercise(
    "08", 2, "a training transform for photos of any size", _check_transform,
    hint_text="RandomResizedCrop(224) picks a random part of the photo and resizes it, so it "
    "works for any size; RandomCrop(224) fails on a photo smaller than 224 pixels.",
    solution_code="""from torchvision import transforms

my_photo_transform = transforms.Compose([
    transforms.RandomResizedCrop(224, scale=(0.35, 1.0)), transforms.RandomHorizontalFlip(),
    transforms.ToTensor(), transforms.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
])""",
)  # fmt: skip
EXERCISES = [q1, q2]

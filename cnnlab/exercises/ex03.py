"""Checked exercises of notebook 03 (transfer learning): a new head on a frozen
backbone, and the preprocessing the weights expect."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image
from torch import nn
from torchvision import transforms

from .base import Exercise, Result, call, model_device, wrong

_MEAN, _STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
_CIFAR = ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616))


def _check_head(answer) -> Result:
    fc = getattr(answer, "fc", None)
    if not isinstance(answer, nn.Module) or not isinstance(fc, nn.Linear):
        return wrong("answer with the ResNet-18 model itself, whose new head is model.fc")
    if fc.out_features == 1000:
        return wrong("model.fc still has ImageNet's 1,000 outputs: replace it with "
                     "nn.Linear(model.fc.in_features, 5)")  # fmt: skip
    if fc.out_features != 5:
        return wrong(f"the head has {fc.out_features} outputs; the task has 5 classes")
    if fc.in_features != 512:
        return wrong(f"the head takes {fc.in_features} features, but ResNet-18's are 512 wide "
                     "(2,048 is ResNet-50's): use model.fc.in_features rather than a number")  # fmt: skip
    backbone = [p for name, p in answer.named_parameters() if not name.startswith("fc.")]
    if all(p.requires_grad for p in backbone):
        return wrong("the backbone still trains: call requires_grad_(False) on the model "
                     "before replacing the head")  # fmt: skip
    if any(p.requires_grad for p in backbone):
        return wrong("part of the backbone still trains: freeze every parameter outside fc")
    if not all(p.requires_grad for p in fc.parameters()):
        return wrong("the new head is frozen too: freeze first, then replace fc (a new layer "
                     "trains by default)")  # fmt: skip
    answer.eval()
    with torch.no_grad():
        out = call(
            answer, torch.zeros(1, 3, 64, 64, device=model_device(answer)), what="your model"
        )
    if tuple(out.shape) != (1, 5):
        return wrong(f"one image gave {tuple(out.shape)}; expected (1, 5)")
    return Result(True, "a frozen backbone and a new 5-class head, the only part that trains: "
                        "feature extraction, the cheapest way to reuse a network.")  # fmt: skip


def _photo() -> Image.Image:
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (300, 400, 3), dtype=np.uint8)  # landscape, 400 x 300
    pixels[100:200, 150:250] = (230, 40, 40)
    return Image.fromarray(pixels)


def _reference(*steps) -> torch.Tensor:
    return transforms.Compose(list(steps))(_photo())


def _check_preprocess(answer) -> Result:
    if not callable(answer):
        return wrong("answer with a transform (a callable that takes a PIL image), for "
                     "example a transforms.Compose([...])")  # fmt: skip
    out = call(answer, _photo(), what="your transform")
    if isinstance(out, Image.Image):
        return wrong("the transform returns a PIL image: add transforms.ToTensor() (and then "
                     "Normalize)")  # fmt: skip
    if not isinstance(out, torch.Tensor) or out.dim() != 3:
        return wrong("the transform must return one image tensor, (3, height, width)")
    if out.shape[1] != out.shape[2]:
        return wrong(f"the output is {tuple(out.shape)}, not square: Resize(256) keeps the "
                     "aspect ratio, so a CenterCrop(224) must follow")  # fmt: skip
    if tuple(out.shape) != (3, 224, 224):
        return wrong(f"the output is {tuple(out.shape)}; ResNet-18's weights were evaluated "
                     "on 224 x 224 crops of images resized to 256")  # fmt: skip
    if out.min() >= 0 and out.max() <= 1:
        return wrong("the values are in [0, 1]: add transforms.Normalize with ImageNet's mean "
                     "and std, which the weights were trained with")  # fmt: skip
    resize = (transforms.Resize(256), transforms.CenterCrop(224), transforms.ToTensor())
    if torch.allclose(out, _reference(*resize, transforms.Normalize(*_CIFAR)), atol=2e-2):
        return wrong("those are CIFAR-10's mean and std: pretrained ImageNet weights expect "
                     "ImageNet's, (0.485, 0.456, 0.406) and (0.229, 0.224, 0.225)")  # fmt: skip
    squashed = _reference(transforms.Resize((224, 224)), transforms.ToTensor(),
                          transforms.Normalize(_MEAN, _STD))  # fmt: skip
    if torch.allclose(out, squashed, atol=2e-2):
        return wrong("Resize((224, 224)) squashes the photo out of shape; the weights were "
                     "evaluated on Resize(256) then CenterCrop(224), which keeps the shape")  # fmt: skip
    if not torch.allclose(out, _reference(*resize, transforms.Normalize(_MEAN, _STD)), atol=2e-2):
        return wrong("the output differs from the weights' own preprocessing; compare with "
                     "weights.transforms(): resize 256, crop 224, scale to [0, 1], normalise")  # fmt: skip
    return Result(True, "the same numbers as weights.transforms(). Preprocessing that differs "
                        "from the weights' costs accuracy without any error.")  # fmt: skip


q1 = Exercise(
    "03", 1, "a new head on a frozen backbone", _check_head,
    hint_text="Freeze everything first (model.requires_grad_(False)), then replace model.fc: "
    "a new layer's parameters train by default. Read in_features from the old head.",
    solution_code="""from torch import nn
from torchvision.models import resnet18

my_model = resnet18()            # resnet18(weights="DEFAULT") online
my_model.requires_grad_(False)   # freeze the backbone...
my_model.fc = nn.Linear(my_model.fc.in_features, 5)   # ...then a new head, which trains""",
)  # fmt: skip
q2 = Exercise(
    "03", 2, "the preprocessing the weights expect", _check_preprocess,
    hint_text="Four steps: Resize(256), CenterCrop(224), ToTensor(), and Normalize with "
    "ImageNet's mean and std. print(weights.transforms()) shows them.",
    solution_code="""from torchvision import transforms

my_preprocess = transforms.Compose([
    transforms.Resize(256), transforms.CenterCrop(224), transforms.ToTensor(),
    transforms.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
])""",
)  # fmt: skip
EXERCISES = [q1, q2]

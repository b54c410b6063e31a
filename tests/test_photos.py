"""Your own photos, end to end: generated photos of mixed sizes and orientations (some
stored sideways with an EXIF tag), whose class is the layout of the *whole* picture, are
learned through the notebook API and through `cnnlab train --folder`; evaluation,
Predictor, `cnnlab predict` and the web API agree on every file; and `cnnlab classify`
for every architecture, with its own preprocessing."""

from __future__ import annotations

import io
import urllib.error

import pytest
import torch
from PIL import Image

from cnnlab import seed_everything
from cnnlab.cli import main
from cnnlab.data import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    LAYOUT_CLASSES,
    PHOTO_SIZES,
    cifar10_train_transform,
    generate_photo_folder,
    load_image_folder,
    make_loader,
    photo_train_transform,
    transforms_from_weights,
)
from cnnlab.engine import evaluate, fit
from cnnlab.inference import Predictor
from cnnlab.models import SimpleCNN
from cnnlab.preprocessing import Preprocessing
from cnnlab.transfer import ARCHITECTURES, SOURCE_ARCHITECTURES, build_transfer_model

TARGET = 0.9  # test accuracy both training paths must reach on the layout photos


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    root = tmp_path_factory.mktemp("photos")
    generate_photo_folder(root / "train", "layouts", per_class=24, seed=0)
    generate_photo_folder(root / "test", "layouts", per_class=8, seed=1)
    return root


def test_the_generated_photos_have_every_shape_and_some_lie_sideways(photos):
    files = sorted((photos / "train").rglob("*.jpg"))
    stored = {Image.open(f).size for f in files}
    assert {(640, 480), (480, 640), (1024, 768), (300, 300)} <= stored | {s[::-1] for s in stored}
    sideways = [f for f in files if Image.open(f).getexif().get(0x0112) == 6]
    assert 0.1 < len(sideways) / len(files) < 0.5
    assert {Image.open(f).size[::-1] for f in sideways} <= set(PHOTO_SIZES)  # stored turned


def _train(photos, train_transform, pre, epochs=8):
    seed_everything(0)
    train = load_image_folder(photos / "train", train_transform)
    test = load_image_folder(photos / "test", pre.transform())
    model = SimpleCNN(num_classes=len(train.classes), input_size=pre.size)
    fit(model, make_loader(train, 16, shuffle=True, seed=0, num_workers=0), epochs=epochs,
        lr=2e-3, device="cpu", progress=False)  # fmt: skip
    return model, evaluate(model, make_loader(test, 64, num_workers=0)).accuracy


def test_whole_photos_are_learned_where_patches_fail(photos):
    pre = Preprocessing.for_photos(32, IMAGENET_MEAN, IMAGENET_STD)
    _, accuracy = _train(photos, photo_train_transform(32), pre)
    assert accuracy >= TARGET
    # the old path: a 32-px crop out of the photo, never resized, sees a patch of one colour
    _, patches = _train(photos, cifar10_train_transform(IMAGENET_MEAN, IMAGENET_STD), pre)
    assert patches < 0.7 < accuracy


def test_the_cli_trains_on_photos_and_every_way_of_asking_agrees(
    photos, tmp_path, clean_env, capsys
):
    from fastapi.testclient import TestClient

    from cnnlab.serve import create_app
    from cnnlab.tasks import evaluate_model

    clean_env.setenv("CNNLAB_OFFLINE", "1")
    model = tmp_path / "layouts.pt"
    assert main(["train", "--folder", str(photos), "--size", "32", "--epochs", "8", "--lr", "2e-3",
                 "--batch-size", "16", "--out", str(model)]) == 0  # fmt: skip
    assert evaluate_model(model, photos, progress=False).accuracy >= TARGET
    predictor = Predictor.load(model)
    assert predictor.class_names == list(LAYOUT_CLASSES)
    assert predictor.preprocessing == Preprocessing.for_photos(32, IMAGENET_MEAN, IMAGENET_STD)
    files = sorted((photos / "test").rglob("*.jpg"))
    direct = [predictor.predict(f, k=1)[0][0] for f in files]
    capsys.readouterr()
    assert main(["predict", str(model), "-k", "1", *map(str, files)]) == 0
    cli = [line.split(": ")[1].rsplit(" ", 1)[0] for line in capsys.readouterr().out.splitlines()]
    client = TestClient(create_app(predictor))
    api = [client.post("/predict", params={"k": 1}, files={"file": (f.name, f.read_bytes())})
           .json()["predictions"][0]["label"] for f in files]  # fmt: skip
    test_set = load_image_folder(photos / "test", predictor.preprocessing.transform())
    loader = make_loader(test_set, 64, num_workers=0)
    batch = torch.cat([x for x, _ in loader])
    evaluated = [predictor.class_names[i] for i in predictor.model(batch).argmax(1).tolist()]
    assert direct == cli == api == evaluated


def test_fine_tuning_a_torchvision_architecture_from_the_cli(photos, tmp_path, clean_env):
    clean_env.setenv("CNNLAB_OFFLINE", "1")  # random weights, announced: the plumbing is tested
    clean_env.setenv("CNNLAB_FAST", "1")
    out = tmp_path / "mobile.pt"
    assert main(["train", "--folder", str(photos), "--arch", "mobilenet_v3_small", "--size", "64",
                 "--strategy", "last_block", "--epochs", "1", "--batch-size", "32",
                 "--out", str(out)]) == 0  # fmt: skip
    predictor = Predictor.load(out)
    assert predictor.preprocessing.size == 64 and predictor.preprocessing.resize == 73
    assert predictor.preprocessing.mean == IMAGENET_MEAN
    assert len(predictor.predict(next((photos / "test").rglob("*.jpg")), k=2)) == 2


def test_presets_come_from_the_weights(clean_env):
    from torchvision.models import EfficientNet_B0_Weights, Inception_V3_Weights

    train_tf, eval_tf = transforms_from_weights(Inception_V3_Weights.DEFAULT)
    photo = Image.new("RGB", (640, 480))
    assert train_tf(photo).shape == eval_tf(photo).shape == (3, 299, 299)
    assert eval_tf.transforms[0].size == 342
    pre = Preprocessing.from_weights(EfficientNet_B0_Weights.DEFAULT)
    assert (pre.size, pre.resize, pre.interpolation) == (224, 256, "bicubic")


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_every_architecture_classifies_with_its_own_preprocessing(arch, clean_env):
    from torchvision.models import get_model_weights

    weights = get_model_weights(arch).DEFAULT
    with torch.device("meta"):
        tm = build_transfer_model(arch, num_classes=None, weights=None)
    expected = weights.transforms()
    assert (
        tm.preprocessing.size == expected.crop_size[0] == (299 if arch == "inception_v3" else 224)
    )
    assert tm.preprocessing.resize == expected.resize_size[0]
    assert list(tm.preprocessing.mean) == list(expected.mean)
    assert len(weights.meta["categories"]) == 1000


def _photo_file(tmp_path):
    path = tmp_path / "photo.jpg"
    Image.new("RGB", (500, 375), (180, 120, 40)).save(path)
    return path


@pytest.mark.parametrize("arch", ["resnet18", "inception_v3", "mobilenet_v2"])
def test_cnnlab_classify_says_loudly_that_offline_weights_are_random(
    arch, tmp_path, clean_env, capsys
):
    clean_env.setenv("CNNLAB_OFFLINE", "1")
    assert main(["classify", str(_photo_file(tmp_path)), "--arch", arch]) == 0
    out = capsys.readouterr().out
    assert "RANDOM weights" in out
    line = [l for l in out.splitlines() if "photo.jpg" in l][0]  # noqa: E741
    assert line.count("%") == 5


def test_classify_all_prints_the_seven_source_models_side_by_side(
    tmp_path, clean_env, capsys, monkeypatch
):
    import cnnlab.transfer as transfer

    clean_env.setenv("CNNLAB_OFFLINE", "1")
    built = []
    real = transfer.build_transfer_model

    def counted(arch, *args, **kwargs):  # the real builders, counted
        built.append(arch)
        return real(arch, *args, **kwargs)

    monkeypatch.setattr(transfer, "build_transfer_model", counted)
    assert main(["classify", str(_photo_file(tmp_path)), "--arch", "all", "-k", "1"]) == 0
    out = capsys.readouterr().out
    assert built[: len(SOURCE_ARCHITECTURES)] == list(SOURCE_ARCHITECTURES)
    assert set(built) == set(ARCHITECTURES)
    for arch in ARCHITECTURES:
        assert f"== {arch}\n" in out


@pytest.fixture
def torch_home(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))

    def no_download(url, *args, **kwargs):
        raise urllib.error.URLError(f"test: no network for {url}")

    monkeypatch.setattr(torch.hub, "download_url_to_file", no_download)
    return tmp_path / "torch"


def test_classify_uses_the_cached_pretrained_weights(torch_home, tmp_path, clean_env):
    """The real `weights=` path: a stand-in checkpoint under TORCH_HOME, with a head that
    always answers class 7 ("cock" in ImageNet), must be what classify runs."""
    import torchvision
    from torchvision.models import MobileNet_V2_Weights

    from cnnlab.tasks import classify_images

    weights = MobileNet_V2_Weights.DEFAULT
    reference = torchvision.models.mobilenet_v2()
    with torch.no_grad():
        reference.classifier[1].weight.zero_()
        reference.classifier[1].bias.zero_()
        reference.classifier[1].bias[7] = 20.0
    target = torch_home / "hub" / "checkpoints" / weights.url.rsplit("/", 1)[-1]
    target.parent.mkdir(parents=True)
    torch.save(reference.state_dict(), target)
    (row,) = classify_images([_photo_file(tmp_path)], "mobilenet_v2", k=1)["mobilenet_v2"]
    assert row.top[0][0] == weights.meta["categories"][7] and row.top[0][1] > 0.99


def test_bgr_images_from_opencv_are_a_silent_bug_that_decode_image_avoids():
    """OpenCV reads B, G, R; PIL and torchvision R, G, B. A BGR array passed as RGB swaps
    red and blue without any error: the reason cnnlab decodes with PIL only."""
    import numpy as np

    rgb = np.zeros((4, 4, 3), np.uint8)
    rgb[..., 0] = 255  # pure red
    bgr = rgb[..., ::-1]  # what cv2.imread would hold
    assert Image.fromarray(np.ascontiguousarray(bgr)).getpixel((0, 0)) == (0, 0, 255)  # blue!
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="PNG")
    from cnnlab.images import decode_image

    assert decode_image(buffer.getvalue()).getpixel((0, 0)) == (255, 0, 0)


def test_the_offline_flowers_standin_is_made_per_size_outside_the_notebooks(
    clean_env, tmp_path, capsys
):
    """Generated stand-in photos go to the temporary folder (not ./data beside the
    notebooks), a folder per size: a smoke run's 2 photos per class are never reused by a
    full run that asked for more."""
    import tempfile

    from cnnlab.data import load_flowers102

    clean_env.setenv("CNNLAB_OFFLINE", "1")
    clean_env.chdir(tmp_path)
    small = load_flowers102(standin_per_class=2)
    larger = load_flowers102(standin_per_class=3)
    assert "GENERATED STAND-IN" in capsys.readouterr().out
    assert small.parent == larger.parent and small.is_relative_to(tempfile.gettempdir())
    assert not (tmp_path / "data").exists()
    counts = [len(list((root / "train").rglob("*.jpg"))) for root in (small, larger)]
    assert counts == [2 * 5, 3 * 5]
    assert load_flowers102(tmp_path / "mine", standin_per_class=2).is_relative_to(tmp_path / "mine")

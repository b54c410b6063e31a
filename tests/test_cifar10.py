"""Where CIFAR-10 comes from: offline stand-in, a local ImageFolder copy, or the download."""

import ssl
import tarfile
import urllib.error

import pytest
import torchvision.datasets.cifar as tv_cifar

from cnnlab.data import CIFAR10_CLASSES, StandInCIFAR10, load_cifar10
from cnnlab.errors import DataUnavailableError
from tests.test_folder import make_folder


@pytest.fixture
def cifar_copy(tmp_path):
    root = tmp_path / "cifar10-jpg"
    make_folder(root / "train", CIFAR10_CLASSES, per_class=2, fmt="jpg")
    make_folder(root / "test", CIFAR10_CLASSES, per_class=1, fmt="jpg")
    return root


def test_offline_gives_the_standin_with_a_loud_banner(clean_env, capsys):
    clean_env.setenv("CNNLAB_OFFLINE", "1")
    ds = load_cifar10(train=False, standin_size=20)
    assert isinstance(ds, StandInCIFAR10) and len(ds) == 20
    out = capsys.readouterr().out
    assert "CNNLAB_OFFLINE=1" in out and "GENERATED STAND-IN" in out and "#####" in out


def test_imagefolder_copy_from_env(clean_env, cifar_copy):
    clean_env.setenv("CNNLAB_CIFAR10_DIR", str(cifar_copy))
    train, test = load_cifar10(train=True), load_cifar10(train=False)
    assert tuple(train.classes) == CIFAR10_CLASSES
    assert (len(train), len(test)) == (20, 10)


def test_imagefolder_copy_from_a_tar_gz(clean_env, cifar_copy, tmp_path):
    archive = tmp_path / "cifar10-jpg.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(cifar_copy, arcname="cifar10-jpg")
    clean_env.setenv("CNNLAB_DATA_DIR", str(tmp_path / "cache"))
    ds = load_cifar10(train=False, folder=archive)
    assert len(ds) == 10
    assert (tmp_path / "cache" / "cifar10-jpg" / ".extracted").exists()
    assert len(load_cifar10(train=False, folder=archive)) == 10  # second call reuses it


def test_a_folder_that_is_not_cifar10_is_refused(clean_env, tmp_path):
    make_folder(tmp_path / "pets" / "test", ("cat", "dog"))
    with pytest.raises(DataUnavailableError, match=r"not CIFAR-10's.*use load_image_folder"):
        load_cifar10(train=False, folder=tmp_path / "pets")


@pytest.mark.parametrize(
    "failure",
    [
        urllib.error.URLError("[Errno -3] Temporary failure in name resolution"),
        ssl.SSLError("CERTIFICATE_VERIFY_FAILED"),
        RuntimeError("File not found or corrupted."),
    ],
    ids=["no-network", "ssl", "checksum"],
)
def test_failed_download_names_three_ways_out(clean_env, tmp_path, monkeypatch, failure):
    def fail(*args, **kwargs):
        raise failure

    monkeypatch.setattr(tv_cifar, "download_and_extract_archive", fail)
    with pytest.raises(DataUnavailableError) as info:
        load_cifar10(train=True, root=tmp_path)
    message = str(info.value)
    assert f"could not download CIFAR-10 into {tmp_path}" in message
    assert "cifar-10-python.tar.gz" in message  # 1. the official archive
    assert "CNNLAB_CIFAR10_DIR" in message  # 2. an ImageFolder copy
    assert "CNNLAB_OFFLINE=1" in message  # 3. the stand-in
    assert isinstance(info.value.__cause__, type(failure))


def test_missing_files_without_download(clean_env, tmp_path):
    with pytest.raises(DataUnavailableError, match="Three ways out"):
        load_cifar10(train=False, root=tmp_path, download=False)

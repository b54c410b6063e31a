"""The web API: good uploads answered, every bad upload a 4xx with a message, the server
never crashing; and one test against a real uvicorn server on 127.0.0.1."""

from __future__ import annotations

import io
import socket
import threading
import time

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from cnnlab import seed_everything
from cnnlab.data import CIFAR10_CLASSES
from cnnlab.inference import Predictor, Preprocessing
from cnnlab.models import SimpleCNN
from cnnlab.serve import create_app


def _encode(image: Image.Image, fmt: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def predictor():
    seed_everything(0)
    return Predictor(SimpleCNN(), CIFAR10_CLASSES, Preprocessing(32))


@pytest.fixture(scope="module")
def client(predictor):
    return TestClient(create_app(predictor, max_bytes=200_000))


def _post(client, data: bytes, name="x.png", **params):
    return client.post("/predict", files={"file": (name, data, "application/octet-stream")},
                       params=params)  # fmt: skip


def test_health_page_and_docs(client):
    assert client.get("/health").json() == {"status": "ok", "classes": 10, "input_size": 32}
    page = client.get("/")
    assert page.status_code == 200 and "<form" in page.text and 'type="file"' in page.text
    assert "/predict" in client.get("/openapi.json").json()["paths"]
    assert client.get("/docs").status_code == 200


def test_a_good_upload_gets_top_k(client, predictor):
    picture = Image.fromarray(np.random.default_rng(1).integers(0, 255, (32, 32, 3), np.uint8))
    answer = _post(client, _encode(picture, "JPEG"), name="cat.jpg", k=3)
    assert answer.status_code == 200
    body = answer.json()
    assert body["filename"] == "cat.jpg" and len(body["predictions"]) == 3
    expected = predictor.predict(_encode(picture, "JPEG"), k=3)
    assert [(p["label"], p["probability"]) for p in body["predictions"]] == expected


@pytest.mark.parametrize(
    "image",
    [Image.new("L", (40, 30), 99), Image.new("RGBA", (32, 32), (0, 0, 255, 128)),
     Image.fromarray(np.full((20, 20), 40000, np.uint16)), Image.new("P", (16, 16), 3),
     Image.new("1", (16, 16), 1)],
    ids=["grayscale", "rgba", "16-bit", "palette", "1-bit"],
)  # fmt: skip
def test_odd_modes_are_converted_not_refused(client, image):
    answer = _post(client, _encode(image))
    assert answer.status_code == 200 and len(answer.json()["predictions"]) == 5


@pytest.mark.parametrize(
    ("data", "status", "message"),
    [(b"%PDF-1.4 not an image", 415, "not an image"),
     (_encode(Image.new("RGB", (64, 64), (1, 2, 3)))[:120], 415, "truncated or damaged"),
     (b"", 400, "empty"),
     (b"\x89PNG" + b"0" * 300_000, 413, "larger than 200,000 bytes")],
    ids=["not-an-image", "truncated", "empty", "too-large"],
)  # fmt: skip
def test_bad_uploads_get_a_clear_4xx_and_the_server_goes_on(client, data, status, message):
    answer = _post(client, data)
    assert answer.status_code == status and message in answer.json()["detail"]
    assert client.get("/health").status_code == 200


def test_missing_file_and_bad_k_are_validation_errors(client):
    assert client.post("/predict").status_code == 422
    assert _post(client, _encode(Image.new("RGB", (8, 8))), k=0).status_code == 422


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_real_uvicorn_server_on_loopback(predictor):
    import uvicorn

    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(predictor), host="127.0.0.1", port=port,
                                           log_level="warning"))  # fmt: skip
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 20
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.05)
        assert server.started, "uvicorn did not start within 20 s"
        base = f"http://127.0.0.1:{port}"
        assert httpx.get(f"{base}/health").json()["status"] == "ok"
        answer = httpx.post(
            f"{base}/predict", files={"file": ("a.png", _encode(Image.new("RGB", (32, 32))))}
        )
        assert answer.status_code == 200 and len(answer.json()["predictions"]) == 5
        assert httpx.post(f"{base}/predict", files={"file": ("b.png", b"junk")}).status_code == 415
    finally:
        server.should_exit = True
        thread.join(timeout=10)
    assert not thread.is_alive()

"""A small web API for a trained model (FastAPI): ``POST /predict``, ``GET /health``, an
upload page at ``/``, and the automatic OpenAPI docs at ``/docs``.

Every upload is distrusted: its bytes are limited (413), its pixel count is checked from
the image header before anything is decoded (413: a 200 KB PNG can declare 8000 x 8000
pixels, a quarter of a gigabyte once decoded), at most ``max_concurrent`` images are
decoded at once, and it is decoded exactly as training decoded its images
(:func:`cnnlab.images.decode_image`). Anything that is not a readable image gets a 4xx
answer with a message, and the server carries on. PIL's process-wide pixel limit is left
alone.

Example:
    >>> app = create_app(Predictor.load("checkpoints/model.pt"))  # doctest: +SKIP
    >>> import uvicorn; uvicorn.run(app, host="127.0.0.1", port=8000)  # doctest: +SKIP
"""

from __future__ import annotations

import threading
from typing import Annotated

from fastapi import FastAPI, File, HTTPException, Query, UploadFile
from fastapi.responses import HTMLResponse
from starlette.concurrency import run_in_threadpool

from .errors import CorruptImageError
from .images import MAX_PIXELS, ImageTooLargeError
from .inference import Predictor

DEFAULT_MAX_BYTES = 5 * 1024 * 1024

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>cnnlab classifier</title>
<style>body{font-family:sans-serif;max-width:40em;margin:2em auto}li{margin:.2em 0}</style>
</head><body>
<h1>cnnlab image classifier</h1>
<p>Choose an image (JPEG, PNG, ...; at most MAX_MB MB) and see the model's top guesses.</p>
<form id="f"><input type="file" id="file" name="file" accept="image/*" required>
<button type="submit">Classify</button></form>
<ol id="out"></ol><p id="err" style="color:#b00"></p>
<script>
document.getElementById("f").onsubmit = async (e) => {
  e.preventDefault();
  const data = new FormData(); data.append("file", document.getElementById("file").files[0]);
  const r = await fetch("predict?k=5", {method: "POST", body: data});
  const body = await r.json();
  document.getElementById("err").textContent = r.ok ? "" : body.detail;
  document.getElementById("out").innerHTML = r.ok ? body.predictions.map(
    p => `<li>${p.label}: ${(100 * p.probability).toFixed(1)}%</li>`).join("") : "";
};
</script>
<p><a href="docs">API documentation</a></p>
</body></html>"""


def create_app(predictor: Predictor, max_bytes: int = DEFAULT_MAX_BYTES,
               max_pixels: int | None = MAX_PIXELS, max_concurrent: int = 2):  # fmt: skip
    """Build the FastAPI application around ``predictor``.

    Args:
        max_bytes: the largest accepted upload; bigger ones get 413.
        max_pixels: the most pixels an image may declare; bigger ones get 413 before
            decoding. Applies to this app only (PIL's global limit is not changed).
        max_concurrent: images decoded and classified at the same time; further
            requests wait their turn, so memory stays bounded under a burst.

    Example:
        >>> from fastapi.testclient import TestClient  # doctest: +SKIP
        >>> client = TestClient(create_app(predictor))  # doctest: +SKIP
        >>> client.get("/health").json()["status"]  # doctest: +SKIP
        'ok'
    """
    slots = threading.BoundedSemaphore(max_concurrent)

    def classify(data: bytes, k: int, name: str) -> list[tuple[str, float]]:
        with slots:
            image = predictor.prepare(data, name=name, max_pixels=max_pixels)
            return predictor.predict_batch(image.unsqueeze(0), k)[0]

    app = FastAPI(title="cnnlab classifier",
                  description="Top-k predictions of a CNN trained with cnnlab.")  # fmt: skip

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def page() -> str:
        return PAGE.replace("MAX_MB", f"{max_bytes / 1024 / 1024:g}")

    @app.get("/health")
    def health() -> dict:
        """Liveness and what is being served."""
        return {"status": "ok", "classes": len(predictor.class_names),
                "input_size": predictor.preprocessing.size}  # fmt: skip

    @app.post("/predict")
    async def predict(
        file: Annotated[UploadFile, File(description="an image file")],
        k: Annotated[int, Query(ge=1, le=100, description="how many classes")] = 5,
    ) -> dict:
        """Classify one uploaded image; returns the top-k labels with probabilities."""
        data = await file.read(max_bytes + 1)
        if len(data) > max_bytes:
            raise HTTPException(413, f"the upload is larger than {max_bytes:,} bytes")
        if not data:
            raise HTTPException(400, "the upload is empty: send an image file as 'file'")
        name = f"the upload {file.filename!r}" if file.filename else "the upload"
        try:
            # in a worker thread, so the event loop keeps answering (/health) meanwhile
            top = await run_in_threadpool(classify, data, k, name)
        except ImageTooLargeError as error:
            raise HTTPException(413, str(error)) from error
        except CorruptImageError as error:
            raise HTTPException(415, str(error)) from error
        return {"filename": file.filename,
                "predictions": [{"label": name, "probability": p} for name, p in top]}  # fmt: skip

    return app

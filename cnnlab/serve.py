"""A small web API for a trained model (FastAPI): ``POST /predict``, ``GET /health``, an
upload page at ``/``, and the automatic OpenAPI docs at ``/docs``.

Every upload is distrusted: size-limited, fully decoded before use, converted to RGB
whatever its mode; anything that is not a readable image gets a 4xx answer with a message,
and the server carries on.

Example:
    >>> app = create_app(Predictor.load("checkpoints/model.pt"))  # doctest: +SKIP
    >>> import uvicorn; uvicorn.run(app, host="127.0.0.1", port=8000)  # doctest: +SKIP
"""

from __future__ import annotations

from typing import Annotated

from fastapi import FastAPI, File, HTTPException, Query, UploadFile
from fastapi.responses import HTMLResponse
from PIL import Image
from starlette.concurrency import run_in_threadpool

from .errors import CorruptImageError
from .inference import Predictor

DEFAULT_MAX_BYTES = 5 * 1024 * 1024
MAX_PIXELS = 40_000_000  # larger images are refused before decoding (decompression bombs)

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


def create_app(predictor: Predictor, max_bytes: int = DEFAULT_MAX_BYTES):
    """Build the FastAPI application around ``predictor``.

    Args:
        max_bytes: the largest accepted upload; bigger ones get 413.

    Example:
        >>> from fastapi.testclient import TestClient  # doctest: +SKIP
        >>> client = TestClient(create_app(predictor))  # doctest: +SKIP
        >>> client.get("/health").json()["status"]  # doctest: +SKIP
        'ok'
    """
    Image.MAX_IMAGE_PIXELS = MAX_PIXELS
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
        try:
            # in a worker thread, so the event loop keeps answering (/health) meanwhile
            top = await run_in_threadpool(predictor.predict, data, k=k)
        except CorruptImageError as error:
            raise HTTPException(415, str(error)) from error
        except Image.DecompressionBombError as error:
            raise HTTPException(413, f"the image has too many pixels ({error})") from error
        return {"filename": file.filename,
                "predictions": [{"label": name, "probability": p} for name, p in top]}  # fmt: skip

    return app

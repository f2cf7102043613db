"""The HTTP service: GET /health, GET /info, POST /predict, the web page at /, OpenAPI docs at /docs.

Guards, in the order a request meets them: the upload size (413, before it is all read), one image
per request, the image's pixel count read from its header before decoding (413), anything Pillow
cannot read (400), admission to a bounded inference pool (503 when full) and a time limit (504).
Uploads stay in memory, or in Starlette's spooled temporary files for multipart bodies; nothing is
written anywhere else.
"""

from __future__ import annotations

import asyncio
import base64
import io
import threading
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from importlib import resources
from typing import Any

import numpy as np
from fastapi import FastAPI, HTTPException, Query, Request
from fastapi.responses import HTMLResponse
from PIL import Image, UnidentifiedImageError

from cnnkit import __version__
from cnnkit.data.images import upright
from cnnkit.data.inputs import InputWatch
from cnnkit.log import LOGGER


@dataclass(frozen=True)
class Limits:
    max_upload_mb: float = 20.0  # largest request body (MB); a larger one gets 413
    max_pixels: int = 50_000_000  # largest image (pixels, from its header); larger gets 413, before decoding
    workers: int = 1  # inference threads: requests that run at once
    queue: int = 16  # requests admitted to wait for a worker; beyond them, 503
    timeout_s: float = 30.0  # seconds a request may wait and run; then 504


def png_base64(picture: Image.Image) -> str:
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def decode_upload(data: bytes, max_pixels: int) -> Image.Image:
    """Bytes -> a decoded PIL image, or HTTPException 400 (not an image) / 413 (too many pixels)."""
    if not data:
        raise HTTPException(400, "empty upload: send an image file (PNG, JPEG, TIFF, BMP, ...)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            width, height = image.size
            if width * height > max_pixels:
                raise HTTPException(413, f"image of {width}x{height} px exceeds the server's limit of "
                                         f"{max_pixels} pixels; send a smaller image")
            image.load()
        return upright(image)
    except (UnidentifiedImageError, Image.DecompressionBombWarning, Image.DecompressionBombError) as e:
        if isinstance(e, UnidentifiedImageError):
            raise HTTPException(400, "not an image Pillow can read; send PNG, JPEG, TIFF, BMP or WebP") from None
        raise HTTPException(413, f"image too large to decode safely ({e})") from None
    except (OSError, SyntaxError, ValueError) as e:
        raise HTTPException(400, f"corrupt or truncated image ({e})") from None


async def read_capped(request: Request, cap: int) -> bytes:
    """The request body, refusing (413) past ``cap`` bytes without reading the rest."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > cap:
        raise HTTPException(413, f"upload of {int(declared)} bytes exceeds the limit of {cap} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > cap:
            raise HTTPException(413, f"upload exceeds the limit of {cap} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


async def image_bytes(request: Request, body: bytes) -> bytes:
    """The image in a multipart form (field ``file``, or the only file) or the raw body itself."""
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        return body

    async def replay() -> dict:
        return {"type": "http.request", "body": body, "more_body": False}

    form = await Request(request.scope, replay).form(max_files=1, max_fields=20)
    try:
        upload = form.get("file") or next((v for v in form.values() if hasattr(v, "read")), None)
        if upload is None or not hasattr(upload, "read"):
            raise HTTPException(400, "multipart upload without a file: send the image in a field named 'file'")
        return await upload.read()
    finally:
        await form.close()


def info(predictor: Any) -> dict[str, Any]:
    meta = predictor.meta
    shape = getattr(predictor, "input_shape", None)
    return {"task": meta["task"], "model": meta.get("model"), "classes": list(meta["classes"]),
            "colours": meta.get("colours"), "input_size": shape[2:] if shape else meta.get("imgsz") or meta.get("crop"),
            "options": predictor.options(), "runtime": "onnxruntime" if shape else "pytorch",
            "cnnkit_version": __version__}


def response_body(predictor: Any, image: Image.Image, prediction: dict, overlay: bool, mask: bool) -> dict:
    """JSON for one prediction: the task's record, plus the class-id mask (segment) and the overlay as
    base64 PNGs when asked."""
    body = dict(predictor.task.record(prediction))
    if mask and "mask" in prediction:
        body["mask_png"] = png_base64(Image.fromarray(np.asarray(prediction["mask"], np.uint8)))
    if overlay:
        body["overlay_png"] = png_base64(predictor.task.visualise(image, prediction, predictor.meta))
    return body


class Runner:
    """A bounded pool: ``workers`` threads, ``queue`` more calls admitted to wait; beyond, 503.

    A call holds its slot until its work really ends, even after its request timed out (a running
    thread cannot be stopped), so that timed-out work cannot pile up behind the pool. PyTorch
    models, whose predictors set per-call options on the module, run one call at a time.
    """

    def __init__(self, predictor: Any, limits: Limits):
        self.predictor, self.limits = predictor, limits
        self.pool = ThreadPoolExecutor(max_workers=limits.workers, thread_name_prefix="cnnkit-infer")
        self.pending = 0  # calls admitted and not finished; changed under self.count_lock
        self.count_lock = threading.Lock()
        self.serial = None if getattr(predictor, "thread_safe", False) else threading.Lock()
        self.watch = InputWatch(predictor.meta)  # uploads far from the training images: warned once

    def _predict(self, image: Image.Image, options: dict) -> dict:
        if self.serial is None:
            return self.predictor.predict([image], **options)[0]
        with self.serial:
            return self.predictor.predict([image], **options)[0]

    def _release(self, _: Any) -> None:
        with self.count_lock:
            self.pending -= 1

    async def predict(self, image: Image.Image, options: dict) -> dict:
        with self.count_lock:
            if self.pending >= self.limits.workers + self.limits.queue:
                raise HTTPException(503, "server busy: all inference slots are taken; retry shortly",
                                    headers={"Retry-After": "1"})
            self.pending += 1
        work = self.pool.submit(self._predict, image, options)
        work.add_done_callback(self._release)
        try:
            return await asyncio.wait_for(asyncio.wrap_future(work), self.limits.timeout_s)
        except asyncio.TimeoutError:
            raise HTTPException(504, f"prediction took over {self.limits.timeout_s:g} s; "
                                     "send a smaller image or raise --timeout") from None


def create_app(predictor: Any, limits: Limits = Limits()) -> FastAPI:
    """The app for one loaded model (a checkpoint's ``Model`` or an ``OnnxModel``)."""
    app = FastAPI(title="cnnkit", version=__version__,
                  description=f"Predictions of a cnnkit {predictor.meta['task']} model "
                              f"({predictor.meta.get('model')}, {len(predictor.meta['classes'])} classes).")
    runner = Runner(predictor, limits)
    cap = int(limits.max_upload_mb * 1_000_000)
    page = resources.files("cnnkit.serve").joinpath("page.html").read_text(encoding="utf-8")

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def index() -> str:
        return page

    @app.get("/health")
    def health() -> dict:
        return {"status": "ok"}

    @app.get("/info")
    def get_info() -> dict:
        """Task, model, classes and their colours, input size, and the options /predict takes."""
        return info(predictor)

    @app.post("/predict")
    async def predict(
        request: Request,
        topk: int | None = Query(None, ge=1, description="classify: classes returned"),
        score_thresh: float | None = Query(None, ge=0, le=1, description="instance, detect: lowest score kept"),
        max_det: int | None = Query(None, ge=0, description="instance, detect: most objects returned"),
        overlay: bool = Query(False, description="also return the annotated image as a base64 PNG"),
        mask: bool = Query(True, description="segment: return the class-id mask as a base64 PNG"),
    ) -> dict:
        """One image, as a multipart file (field ``file``) or as the raw request body. Returns the task's
        prediction: classify ``topk``; segment class ``areas`` and ``mask_png``; instance ``instances``
        (class, score, box [x0, y0, x1, y1] px, COCO RLE mask); with ``overlay``, ``overlay_png``;
        ``warnings`` when the image is far from the training images (size, colour, bit depth, brightness)."""
        start = time.perf_counter()
        given = {"topk": topk, "score_thresh": score_thresh, "max_det": max_det}
        options = {k: v for k, v in given.items() if v is not None}
        wrong = sorted(set(options) - set(predictor.options()))
        if wrong:
            raise HTTPException(400, f"options {wrong} do not apply to a {predictor.meta['task']} model; "
                                     f"it takes {predictor.options()}")
        image = decode_upload(await image_bytes(request, await read_capped(request, cap)), limits.max_pixels)
        prediction = await runner.predict(image, options)
        body = response_body(predictor, image, prediction, overlay, mask)
        far = runner.watch.check(image, "upload")  # each answer says when its input is far from training's
        return {"task": predictor.meta["task"], **body, **({"warnings": far} if far else {}),
                "time_ms": round((time.perf_counter() - start) * 1000, 1)}

    app.state.runner = runner
    return app


def serve(predictor: Any, host: str = "127.0.0.1", port: int = 8000, limits: Limits = Limits()) -> None:
    """Run the app on uvicorn until interrupted."""
    import uvicorn

    if host not in ("127.0.0.1", "localhost", "::1"):
        LOGGER.warning("serving on %s: reachable from other machines; cnnkit serve has no authentication", host)
    LOGGER.info("cnnkit serve: http://%s:%d (page at /, API docs at /docs)", host, port)
    uvicorn.run(create_app(predictor, limits), host=host, port=port, log_level="info")

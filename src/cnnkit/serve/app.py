"""The HTTP service: GET /health, GET /info, POST /predict, the web page at /, OpenAPI docs at /docs.

Guards, in the order a request meets them: the API key when one is set (401), a time limit on
receiving the upload (408: a client that sends slowly cannot hold a connection forever), the upload
size (413, also for chunked bodies, which are read to their end so that the client gets the answer
and not a reset connection), the image's pixel count from its header (413) and anything Pillow cannot
identify (400), both before admission to a bounded pool (503 when full); then, in the pool and off the
event loop, the decoding (400 for a corrupt body) and the work, within a time limit (504).
``/health`` stays fast under any of it.
Uploads stay in memory, or in Starlette's spooled temporary files for multipart bodies; nothing is
written anywhere else. A client that leaves mid-upload is logged in one line.
"""

from __future__ import annotations

import asyncio
import base64
import hmac
import io
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import resources
from typing import Any

import numpy as np
from fastapi import FastAPI, HTTPException, Query, Request
from fastapi.responses import HTMLResponse
from PIL import Image, UnidentifiedImageError
from starlette.requests import ClientDisconnect

from cnnkit import __version__
from cnnkit.data.images import upright
from cnnkit.data.inputs import InputWatch
from cnnkit.errors import CnnkitError
from cnnkit.log import LOGGER
from cnnkit.options import make_options, option_infos, runtime_options
from cnnkit.predictor import Predictor
from cnnkit.serve.docs import add_docs


@dataclass(frozen=True)
class Limits:
    max_upload_mb: float = 20.0  # largest request body (MB); a larger one gets 413
    max_pixels: int = 50_000_000  # largest image (pixels, from its header); larger gets 413, before decoding
    workers: int = 1  # inference threads: requests that run at once
    queue: int = 16  # requests admitted to wait for a worker; beyond them, 503
    timeout_s: float = 30.0  # seconds a request may wait and run; then 504
    body_timeout_s: float = 20.0  # seconds a client may take to send its upload; then 408
    api_key: str = ""  # when set, /predict needs it (header X-API-Key, or Authorization: Bearer KEY); else 401


def png_base64(picture: Image.Image) -> str:
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def open_upload(data: bytes, max_pixels: int) -> Image.Image:
    """Bytes -> a PIL image read from its header only (cheap: done before admission, so that a bomb or a
    non-image never takes a slot of the pool), or HTTPException 400 (not an image) / 413 (too many pixels)."""
    if not data:
        raise HTTPException(400, "empty upload: send an image file (PNG, JPEG, TIFF, BMP, ...)")
    with _pillow_errors():
        image = Image.open(io.BytesIO(data))
        width, height = image.size
        if width * height > max_pixels:
            raise HTTPException(413, f"image of {width}x{height} px exceeds the server's limit of "
                                     f"{max_pixels} pixels; send a smaller image")
        return image


def load_upload(image: Image.Image) -> Image.Image:
    """Decode an image from ``open_upload`` (the costly part: in the pool), upright; HTTPException 400
    when its body is corrupt or truncated."""
    with _pillow_errors():
        image.load()
        return upright(image)


@contextmanager
def _pillow_errors() -> Iterator[None]:
    """Pillow's failures as HTTP answers: 400 for what is not an image or is corrupt, 413 for a bomb."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            yield
    except (UnidentifiedImageError, Image.DecompressionBombWarning, Image.DecompressionBombError) as e:
        if isinstance(e, UnidentifiedImageError):
            raise HTTPException(400, "not an image Pillow can read; send PNG, JPEG, TIFF, BMP or WebP") from None
        raise HTTPException(413, f"image too large to decode safely ({e})") from None
    except (OSError, SyntaxError, ValueError) as e:
        raise HTTPException(400, f"corrupt or truncated image ({e})") from None


async def read_capped(request: Request, cap: int, timeout_s: float) -> bytes:
    """The request body within ``timeout_s`` (else 408), refusing (413) past ``cap`` bytes. A body
    declared too large is refused at once; a chunked one is read on, and dropped, to its end (within
    the time limit), so that the client reads the 413 instead of a reset connection."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > cap:
        raise HTTPException(413, f"upload of {int(declared)} bytes exceeds the limit of {cap} bytes")
    chunks, size = [], 0

    async def receive() -> None:
        nonlocal size
        async for chunk in request.stream():
            size += len(chunk)
            if size <= cap:
                chunks.append(chunk)
            elif chunks:
                chunks.clear()  # over the cap: keep reading to the end, keep nothing

    try:
        await asyncio.wait_for(receive(), timeout_s)
    except asyncio.TimeoutError:
        raise HTTPException(408, f"upload not received within {timeout_s:g} s; send it faster or a smaller image",
                            headers={"Connection": "close"}) from None
    except ClientDisconnect:
        LOGGER.info("client %s left before its upload was received", _client(request))
        raise HTTPException(400, "client disconnected") from None
    if size > cap:
        raise HTTPException(413, f"upload of {size} bytes exceeds the limit of {cap} bytes")
    return b"".join(chunks)


def _client(request: Request) -> str:
    return f"{request.client.host}:{request.client.port}" if request.client else "unknown"


def check_key(request: Request, key: str) -> None:
    """401 unless the request carries ``key`` (X-API-Key, or Authorization: Bearer KEY); compared in
    constant time."""
    if not key:
        return
    given = request.headers.get("x-api-key") or ""
    bearer = request.headers.get("authorization", "")
    if bearer.lower().startswith("bearer "):
        given = given or bearer[7:].strip()
    if not hmac.compare_digest(given.encode(), key.encode()):
        raise HTTPException(401, "missing or wrong API key: send it in the X-API-Key header (or Authorization: "
                                 "Bearer KEY)", headers={"WWW-Authenticate": "Bearer"})


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


def info(predictor: Predictor) -> dict[str, Any]:
    """The model card as /info shows it, with the prediction options /predict takes (name, type, default,
    unit, range)."""
    meta = predictor.meta
    shape = getattr(predictor, "input_shape", None)
    return {"task": meta.task, "model": meta.model, "classes": list(meta.classes),
            "colours": [list(c) for c in meta.colours] or None,
            "input_size": shape[2:] if shape else (meta.imgsz or list(meta.crop) or None),
            "options": predictor.options(),
            "option_details": [o.describe() for o in runtime_options(predictor.options_type, predictor.runtime)],
            "runtime": "onnxruntime" if predictor.runtime == "onnx" else predictor.runtime,
            "model_card": meta.to_dict(), "cnnkit_version": __version__}


RESERVED = ("overlay", "mask")  # query parameters of the answer's form, not prediction options


def query_options(request: Request, predictor: Predictor) -> dict[str, Any]:
    """The prediction options in the query string, parsed and checked by the task's options dataclass; 400
    for one the model does not take, 422 for a bad value (as FastAPI's own parameters)."""
    infos = {o.name: o for o in option_infos(predictor.options_type)}
    out = {}
    keys = [key for key, _ in request.query_params.multi_items()]
    twice = sorted({key for key in keys if keys.count(key) > 1})
    if twice:
        raise HTTPException(422, f"query parameters {twice} given more than once; give each once")
    for key, text in request.query_params.items():
        if key in RESERVED:
            continue
        info = infos.get(key)
        if info is None or predictor.runtime not in info.runtimes:
            raise HTTPException(400, f"options ['{key}'] do not apply to a {predictor.meta.task} model on "
                                     f"{predictor.runtime}; it takes {predictor.options()}")
        try:
            out[key] = info.parse(text)
        except ValueError as e:
            raise HTTPException(422, f"query parameter {key}: {e}") from None
    try:  # the options dataclass's own checks across fields (a tile too small for the model, ...)
        make_options(predictor.options_type, out, predictor.meta.task, predictor.runtime)
    except CnnkitError as e:
        raise HTTPException(422, f"query parameters: {e}") from None
    return out


def openapi_parameters(predictor: Predictor) -> list[dict[str, Any]]:
    """OpenAPI entries for the options of this model's task, generated from its options dataclass."""
    kinds = {bool: "boolean", int: "integer", float: "number", str: "string"}
    params = []
    for o in runtime_options(predictor.options_type, predictor.runtime):
        schema: dict[str, Any] = {"type": kinds.get(o.kind, "string"), "default": o.default}
        schema.update({k: v for k, v in (("minimum", o.low), ("maximum", o.high)) if v is not None})
        if o.choices:
            schema["enum"] = list(o.choices)
        params.append({"name": o.name, "in": "query", "required": False, "schema": schema,
                       "description": o.help + (f" ({o.unit})" if o.unit else "")})
    return params


def response_body(predictor: Predictor, image: Image.Image, prediction: dict, overlay: bool, mask: bool) -> dict:
    """JSON for one prediction: the task's record, plus the class-id mask (segment) and the overlay as
    base64 PNGs when asked."""
    body = dict(predictor.view.record(prediction))
    if mask and "mask" in prediction:
        body["mask_png"] = png_base64(Image.fromarray(np.asarray(prediction["mask"], np.uint8)))
    if overlay:
        body["overlay_png"] = png_base64(predictor.view.visualise(image, prediction, predictor.meta))
    return body


class Runner:
    """A bounded pool: ``workers`` threads, ``queue`` more calls admitted to wait; beyond, 503.

    A call holds its slot until its work really ends, even after its request timed out (a running
    thread cannot be stopped), so that timed-out work cannot pile up behind the pool. A predictor
    that is not ``thread_safe`` runs one call at a time (every cnnkit predictor is: prediction options
    are arguments of post-processing, never attributes of the model).
    """

    def __init__(self, predictor: Predictor, limits: Limits):
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

    def _work(self, image: Image.Image, options: dict, answer: Callable[[Image.Image, dict], dict]) -> dict:
        """In the pool, off the event loop: decode (the costly part of a large upload), predict, answer."""
        image = load_upload(image)
        return answer(image, self._predict(image, options))

    async def run(self, image: Image.Image, options: dict, answer: Callable[[Image.Image, dict], dict]) -> dict:
        """``answer(image, prediction)`` for an image from ``open_upload`` (its header read, not yet decoded):
        admitted (else 503), timed (else 504)."""
        with self.count_lock:
            if self.pending >= self.limits.workers + self.limits.queue:
                raise HTTPException(503, "server busy: all inference slots are taken; retry shortly",
                                    headers={"Retry-After": "1"})
            self.pending += 1
        work = self.pool.submit(self._work, image, options, answer)
        work.add_done_callback(self._release)
        try:
            return await asyncio.wait_for(asyncio.wrap_future(work), self.limits.timeout_s)
        except asyncio.TimeoutError:
            raise HTTPException(504, f"prediction took over {self.limits.timeout_s:g} s; "
                                     "send a smaller image or raise --timeout") from None


def create_app(predictor: Predictor, limits: Limits = Limits()) -> FastAPI:
    """The app for one loaded model (a checkpoint, an .onnx or a TorchScript file: ``cnnkit.load``)."""
    app = FastAPI(title="cnnkit", version=__version__, docs_url=None, redoc_url=None,
                  description=f"Predictions of a cnnkit {predictor.meta.task} model "
                              f"({predictor.meta.model}, {predictor.meta.num_classes} classes).")
    add_docs(app)  # Swagger UI from the installed package, not a CDN
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
        """Task, model, classes and their colours, input size, the options /predict takes, and whether it
        needs an API key (``api_key_required``)."""
        return {**info(predictor), "api_key_required": bool(limits.api_key)}

    @app.post("/predict", openapi_extra={"parameters": openapi_parameters(predictor)})
    async def predict(
        request: Request,
        overlay: bool = Query(False, description="also return the annotated image as a base64 PNG"),
        mask: bool = Query(True, description="segment: return the class-id mask as a base64 PNG"),
    ) -> dict:
        """One image, as a multipart file (field ``file``) or as the raw request body. Returns the task's
        prediction: classify ``topk``; segment class ``areas`` and ``mask_png``; instance ``instances``
        (class, score, box [x0, y0, x1, y1] px, COCO RLE mask); with ``overlay``, ``overlay_png``;
        ``warnings`` when the image is far from the training images (size, colour, bit depth, brightness).
        The task's prediction options are query parameters (listed by /info)."""
        start = time.perf_counter()
        check_key(request, limits.api_key)
        options = query_options(request, predictor)
        data = await image_bytes(request, await read_capped(request, cap, limits.body_timeout_s))
        image = open_upload(data, limits.max_pixels)  # a bomb or a non-image is refused here, without a slot

        def answer(image: Image.Image, prediction: dict) -> dict:
            body = response_body(predictor, image, prediction, overlay, mask)
            far = runner.watch.check(image, "upload")  # each answer says when its input is far from training's
            return {"task": predictor.meta.task, **body, **({"warnings": far} if far else {})}

        body = await runner.run(image, options, answer)
        return {**body, "time_ms": round((time.perf_counter() - start) * 1000, 1)}

    app.state.runner = runner
    return app


def serve(predictor: Predictor, host: str = "127.0.0.1", port: int = 8000, limits: Limits = Limits()) -> None:
    """Run the app on uvicorn until interrupted."""
    import uvicorn

    if host not in ("127.0.0.1", "localhost", "::1") and not limits.api_key:
        LOGGER.warning("serving on %s: reachable from other machines, and anyone there may call /predict; set an "
                       "API key (--api-key or CNNKIT_API_KEY)", host)
    LOGGER.info("cnnkit serve: http://%s:%d (page at /, API docs at /docs)%s", host, port,
                "; /predict needs the API key" if limits.api_key else "")
    # connections beyond a bound get 503 from uvicorn before any of them is read: slow clients cannot
    # take every socket
    uvicorn.run(create_app(predictor, limits), host=host, port=port, log_level="info",
                limit_concurrency=CONNECTIONS + limits.workers + limits.queue, timeout_keep_alive=5)


CONNECTIONS = 64  # open connections served beyond the inference pool's (uploads being received, /health, ...)

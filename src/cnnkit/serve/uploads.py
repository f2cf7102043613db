"""What every route that takes an upload shares: the limits, the API key, reading the body within its size
and time limits, opening the image from its header and decoding it in the pool, and the bounded pool itself.
See ``cnnkit.serve.app`` for the order in which a request meets the guards."""

from __future__ import annotations

import asyncio
import base64
import hmac
import io
import threading
import warnings
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from typing import Any

from fastapi import HTTPException, Request
from PIL import Image, UnidentifiedImageError
from starlette.requests import ClientDisconnect

from cnnkit.data.images import upright
from cnnkit.data.inputs import InputWatch
from cnnkit.log import LOGGER
from cnnkit.predictor import Predictor


@dataclass(frozen=True)
class Limits:
    max_upload_mb: float = 20.0  # largest request body (MB); a larger one gets 413
    max_pixels: int = 50_000_000  # largest image (pixels, from its header); larger gets 413, before decoding
    workers: int = 1  # inference threads: requests that run at once
    queue: int = 16  # requests admitted to wait for a worker; beyond them, 503
    timeout_s: float = 30.0  # seconds a request may wait and run; then 504
    body_timeout_s: float = 20.0  # seconds a client may take to send its upload; then 408
    # when set, /predict and a recognition model's routes need it (header X-API-Key, or Authorization: Bearer KEY);
    # else 401
    api_key: str = ""


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
        with self.predicting():
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
        return await self.call(self._work, image, options, answer)

    async def call(self, work: Callable[..., Any], *args: Any) -> Any:
        """``work(*args)`` in the pool: admitted (else 503), timed (else 504). ``work`` holds ``serial`` itself
        around the model's calls when there is one (see ``predicting``)."""
        with self.count_lock:
            if self.pending >= self.limits.workers + self.limits.queue:
                raise HTTPException(503, "server busy: all inference slots are taken; retry shortly",
                                    headers={"Retry-After": "1"})
            self.pending += 1
        future = self.pool.submit(work, *args)
        future.add_done_callback(self._release)
        try:
            return await asyncio.wait_for(asyncio.wrap_future(future), self.limits.timeout_s)
        except asyncio.TimeoutError:
            raise HTTPException(504, f"prediction took over {self.limits.timeout_s:g} s; "
                                     "send a smaller image or raise --timeout") from None

    def predicting(self) -> AbstractContextManager[Any]:
        """Held around a call of the model: its lock when it is not thread-safe, else nothing."""
        return self.serial if self.serial is not None else nullcontext()


def png_base64(picture: Image.Image) -> str:
    """A PIL image as PNG bytes in base64 (ASCII): the JSON answers' pictures."""
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")

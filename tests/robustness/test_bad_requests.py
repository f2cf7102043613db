"""The server's part of the corpus: each bad request is one line, and must get its HTTP status with a
one-line ``detail`` (no traceback, in the answer or the log)."""

from __future__ import annotations

import io
import logging

import httpx
import numpy as np
import pytest
from PIL import Image

from cnnkit.api import export as export_model
from cnnkit.api import load
from cnnkit.serve.app import Limits
from tests.export.helpers import write_checkpoint
from tests.robustness.corpus import bomb_png
from tests.serve.conftest import running


def png(side: int = 48) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.full((side, side, 3), 90, np.uint8)).save(buffer, "PNG")
    return buffer.getvalue()


GOOD = png()
BOMB: bytes = b""
MULTIPART = "multipart/form-data; boundary=xyz"
TWO_FILES = (b"--xyz\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.png\"\r\n\r\n" + GOOD +
             b"\r\n--xyz\r\nContent-Disposition: form-data; name=\"file2\"; filename=\"b.png\"\r\n\r\n" + GOOD +
             b"\r\n--xyz--\r\n")
NO_FILE = b"--xyz\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nhello\r\n--xyz--\r\n"

# (id, method, path and query, headers, body, status, text the detail must hold)
CASES = [
    ("empty-body", "POST", "/predict", {}, b"", 400, "empty upload"),
    ("text-body", "POST", "/predict", {}, b"hello, not an image", 400, "not an image"),
    ("truncated-png", "POST", "/predict", {}, GOOD[:80], 400, "corrupt or truncated"),
    ("bomb", "POST", "/predict", {}, "BOMB", 413, "exceeds"),
    ("too-many-pixels", "POST", "/predict", {}, png(600), 413, "pixels"),
    ("declared-too-large", "POST", "/predict", {}, b"\0" * 300_000, 413, "exceeds"),
    ("topk-zero", "POST", "/predict?topk=0", {}, GOOD, 422, "topk"),
    ("topk-text", "POST", "/predict?topk=many", {}, GOOD, 422, "topk"),
    ("score-over-one", "POST", "/predict?score_thresh=2", {}, GOOD, 400, "score_thresh"),  # not a classify option
    ("topk-fraction", "POST", "/predict?topk=1.5", {}, GOOD, 422, "topk"),
    ("option-twice", "POST", "/predict?topk=1&topk=3", {}, GOOD, 422, "more than once"),
    ("option-of-another-task", "POST", "/predict?score_thresh=0.5", {}, GOOD, 400, "do not apply"),
    ("multipart-no-file", "POST", "/predict", {"content-type": MULTIPART}, NO_FILE, 400, "without a file"),
    ("multipart-two-files", "POST", "/predict", {"content-type": MULTIPART}, TWO_FILES, 400, "file"),
    ("multipart-torn", "POST", "/predict", {"content-type": MULTIPART}, b"--xyz\r\nContent-Dis", 400, ""),
    ("get-predict", "GET", "/predict", {}, b"", 405, ""),
    ("post-health", "POST", "/health", {}, b"", 405, ""),
    ("unknown-path", "GET", "/../../etc/passwd", {}, b"", 404, ""),
]


@pytest.fixture(scope="module")
def url(tmp_path_factory):
    folder = tmp_path_factory.mktemp("requests")
    path, _ = export_model(write_checkpoint(folder, "classify"), "onnx", dynamic=True, out=folder / "c.onnx")
    global BOMB
    BOMB = bomb_png(folder / "bomb.png").read_bytes()
    with running(load(path), Limits(max_upload_mb=0.2, max_pixels=200 * 200)) as base:
        yield base


@pytest.mark.parametrize("method, path, headers, body, code, expect", [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
def test_bad_request(url, caplog, method, path, headers, body, code, expect):
    caplog.set_level(logging.INFO)
    body = BOMB if body == "BOMB" else body
    reply = httpx.request(method, url + path, headers=headers, content=body, timeout=10)
    assert reply.status_code == code, reply.text
    detail = reply.json().get("detail")
    text = detail if isinstance(detail, str) else str(detail)
    assert "\n" not in text and "Traceback" not in text and expect in text, text
    assert "Traceback" not in caplog.text and "Exception in ASGI" not in caplog.text

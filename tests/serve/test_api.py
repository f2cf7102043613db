"""The HTTP API against a real uvicorn server on loopback: every endpoint, every task, every guard."""

from __future__ import annotations

import base64
import io
import threading
import time

import httpx
import numpy as np
import pytest
from PIL import Image

from cnnkit.api import export as export_model
from cnnkit.api import load
from cnnkit.data.synthetic import make_scene
from cnnkit.serve.app import Limits
from tests.export.helpers import write_checkpoint
from tests.serve.conftest import running


def png_bytes(size: int = 80, seed: int = 0) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(make_scene(seed, seed=7, size=size).image).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict:
    folder = tmp_path_factory.mktemp("serve")
    out = {task: load(write_checkpoint(folder, task), device="cpu") for task in ("classify", "segment", "instance")}
    onnx_path, _ = export_model(write_checkpoint(folder, "classify"), "onnx", dynamic=True, out=folder / "c.onnx")
    out["onnx"] = load(onnx_path)
    return out


def test_an_input_far_from_training_is_said_in_the_answer(models):
    buffer = io.BytesIO()
    Image.fromarray(np.full((64, 64), 3000, np.uint16)).save(buffer, format="PNG")  # 16-bit grey
    with running(models["classify"]) as url:
        far = httpx.post(f"{url}/predict", content=buffer.getvalue(), headers={"content-type": "image/png"}).json()
        usual = httpx.post(f"{url}/predict", content=png_bytes(), headers={"content-type": "image/png"}).json()
    assert any("grey image" in w for w in far["warnings"]) and any("8-bit" in w for w in far["warnings"])
    assert "warnings" not in usual


def test_health_info_docs_and_page(models):
    with running(models["classify"]) as url:
        assert httpx.get(f"{url}/health").json() == {"status": "ok"}
        info = httpx.get(f"{url}/info").json()
        assert info["task"] == "classify" and info["classes"][0] == "circle" and "topk" in info["options"]
        docs = httpx.get(f"{url}/docs")
        assert docs.status_code == 200 and "cdn" not in docs.text  # Swagger UI from the installed package: offline
        assert "/docs-assets/swagger-ui-bundle.js" in docs.text
        assert httpx.get(f"{url}/docs-assets/swagger-ui-bundle.js").status_code == 200
        schema = httpx.get(f"{url}/openapi.json").json()
        assert "/predict" in schema["paths"]
        page = httpx.get(f"{url}/").text
        assert "<title>cnnkit</title>" in page and "http://" not in page and "https://" not in page  # offline


@pytest.mark.parametrize("which", ["classify", "onnx"])
def test_classify_multipart_and_raw_bytes(models, which):
    with running(models[which]) as url:
        multipart = httpx.post(f"{url}/predict?topk=3", files={"file": ("a.png", png_bytes(), "image/png")})
        raw = httpx.post(f"{url}/predict?topk=3", content=png_bytes(), headers={"content-type": "image/png"})
    assert multipart.status_code == raw.status_code == 200, multipart.text
    body = multipart.json()
    assert body["task"] == "classify" and len(body["topk"]) == 3 and body["class"] in models[which].classes
    assert raw.json()["topk"] == body["topk"] and "overlay_png" not in body


def test_segment_returns_areas_mask_and_overlay(models):
    with running(models["segment"]) as url:
        body = httpx.post(f"{url}/predict?overlay=true", content=png_bytes(80)).json()
    mask = np.asarray(Image.open(io.BytesIO(base64.b64decode(body["mask_png"]))))
    assert mask.shape == (80, 80) and mask.max() < 5
    assert abs(sum(body["areas"].values()) - 1) < 1e-3
    assert Image.open(io.BytesIO(base64.b64decode(body["overlay_png"]))).size[0] >= 80


def test_instance_returns_instances_with_rle(models):
    with running(models["instance"]) as url:
        body = httpx.post(f"{url}/predict?score_thresh=0&max_det=5", content=png_bytes(96)).json()
        small_tile = httpx.post(f"{url}/predict?tile=8", content=png_bytes(96))  # was a 500 with a traceback
        info = httpx.get(f"{url}/info").json()
    assert small_tile.status_code == 422 and "--tile 8" in small_tile.json()["detail"]
    assert {o["name"]: o["default"] for o in info["option_details"]}["score_thresh"] == 0.5
    assert 0 < len(body["instances"]) <= 5
    inst = body["instances"][0]
    assert {"class", "score", "box", "rle"} <= set(inst) and inst["rle"]["size"] == [96, 96]


def test_guards(models):
    limits = Limits(max_upload_mb=0.05, max_pixels=200 * 200)
    with running(models["classify"], limits) as url:
        too_big = httpx.post(f"{url}/predict", content=b"\0" * 60_000)
        assert too_big.status_code == 413 and "limit" in too_big.json()["detail"]
        not_image = httpx.post(f"{url}/predict", files={"file": ("notes.txt", b"hello", "text/plain")})
        assert not_image.status_code == 400 and "not an image" in not_image.json()["detail"]
        buffer = io.BytesIO()
        Image.new("L", (400, 400)).save(buffer, format="PNG")  # small file, too many pixels: a bomb's shape
        bomb = httpx.post(f"{url}/predict", content=buffer.getvalue())
        assert bomb.status_code == 413 and "pixels" in bomb.json()["detail"]
        wrong = httpx.post(f"{url}/predict?score_thresh=0.3", content=png_bytes())
        assert wrong.status_code == 400 and "do not apply" in wrong.json()["detail"]
        assert httpx.post(f"{url}/predict", content=b"").status_code == 400
        assert httpx.get(f"{url}/health").status_code == 200  # still serving


class SlowModel:
    """A predictor that takes ``seconds`` per image, to fill the pool and pass the time limit."""

    thread_safe = True

    def __init__(self, inner, seconds: float):
        self.inner, self.seconds = inner, seconds
        self.meta, self.view, self.runtime = inner.meta, inner.view, inner.runtime
        self.options_type = inner.options_type

    def options(self) -> list[str]:
        return self.inner.options()

    def predict(self, images, **options):
        time.sleep(self.seconds)
        return self.inner.predict(images, **options)


def test_time_out_and_bounded_pool(models):
    with running(SlowModel(models["onnx"], 1.5), Limits(timeout_s=0.3)) as url:
        late = httpx.post(f"{url}/predict", content=png_bytes(), timeout=10)
        assert late.status_code == 504 and "took over" in late.json()["detail"]
    with running(SlowModel(models["onnx"], 0.6), Limits(workers=1, queue=1)) as url:
        codes: list[int] = []

        def call() -> None:
            codes.append(httpx.post(f"{url}/predict", content=png_bytes(), timeout=20).status_code)

        threads = [threading.Thread(target=call) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert sorted(codes).count(200) == 2 and codes.count(503) == 2


def test_timed_out_work_keeps_its_slot_until_it_ends(models):
    """A thread cannot be stopped: work whose request timed out still holds its slot, so that such
    work cannot pile up behind the pool."""
    with running(SlowModel(models["onnx"], 1.0), Limits(workers=1, queue=0, timeout_s=0.2)) as url:
        assert httpx.post(f"{url}/predict", content=png_bytes(), timeout=10).status_code == 504
        assert httpx.post(f"{url}/predict", content=png_bytes(), timeout=10).status_code == 503
        time.sleep(1.2)
        assert httpx.post(f"{url}/predict", content=png_bytes(), timeout=10).status_code == 504  # admitted again

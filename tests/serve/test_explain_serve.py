"""POST /explain against a real uvicorn server on loopback: heatmaps of an untrained classify checkpoint as PNG
data URLs of the image's size, the refusals (422, 409, 401), and the pool it shares with /predict."""

from __future__ import annotations

import base64
import io
import threading
import time
from types import SimpleNamespace

import httpx
import numpy as np
import pytest
from PIL import Image

from cnnkit.api import export as export_model
from cnnkit.api import load
from cnnkit.data.synthetic import make_scene
from cnnkit.loading import Model
from cnnkit.options import NoOptions
from cnnkit.serve.app import Limits
from cnnkit.serve.explain import ExplainRoute, grey_png
from tests.export.helpers import write_checkpoint
from tests.serve.conftest import running

WIDTH, HEIGHT = 72, 56  # not square: a map's shape is [H, W]


def png_bytes(seed: int = 0) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(make_scene(seed, seed=7, size=WIDTH).image[:HEIGHT]).save(buffer, format="PNG")
    return buffer.getvalue()


def decode(url: str) -> Image.Image:
    head, _, data = url.partition(",")
    assert head == "data:image/png;base64"
    return Image.open(io.BytesIO(base64.b64decode(data)))


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict:
    folder = tmp_path_factory.mktemp("explain-serve")
    return {"classify": load(write_checkpoint(folder, "classify"), device="cpu"),
            "recognize": load(write_checkpoint(folder, "recognize"), device="cpu"), "folder": folder}


def test_heatmaps_decode_as_pngs_of_the_image_size(models):
    with running(models["classify"]) as url:
        info = httpx.get(f"{url}/info").json()["explain"]
        answer = httpx.post(f"{url}/explain?topk=2", files={"file": ("a.png", png_bytes(), "image/png")}, timeout=60)
        raw = httpx.post(f"{url}/explain?method=gradcam&target=square", content=png_bytes(), timeout=60)
        schema = httpx.get(f"{url}/openapi.json").json()["paths"]["/explain"]["post"]
    assert info["methods"][0] == "gradcam" and info["default"] == "gradcam" and info["reference"] is False
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["method"] == "gradcam" and body["layer"] and len(body["targets"]) == 2
    for target in body["targets"]:
        assert target["label"] and decode(target["overlay"]).size == (WIDTH, HEIGHT) and target["flat"] in (True, False)
        grey = decode(target["map"]["png"])
        assert grey.mode == "L" and grey.size == (WIDTH, HEIGHT) and target["map"]["shape"] == [HEIGHT, WIDTH]
    assert raw.status_code == 200 and [t["label"].split()[0] for t in raw.json()["targets"]] == ["square"]
    assert "best.pt" in schema["description"] and "multipart/form-data" in schema["requestBody"]["content"]
    assert {"method", "target", "topk", "layer"} <= {p["name"] for p in schema["parameters"]}


def test_refusals(models):
    with running(models["classify"], Limits(api_key="k")) as url:
        key = {"X-API-Key": "k"}
        assert httpx.post(f"{url}/explain", content=png_bytes()).status_code == 401
        method = httpx.post(f"{url}/explain?method=lime", content=png_bytes(), headers=key)
        assert method.status_code == 422 and "gradcam" in method.json()["detail"] and "ig" in method.json()["detail"]
        target = httpx.post(f"{url}/explain?target=hexagon", content=png_bytes(), headers=key, timeout=60)
        assert target.status_code == 422 and "hexagon" in target.json()["detail"] and "--" not in target.text
        assert httpx.post(f"{url}/explain?topk=0", content=png_bytes(), headers=key).status_code == 422
        option = httpx.post(f"{url}/explain?score_thresh=0.3", content=png_bytes(), headers=key)
        assert option.status_code == 400 and "do not apply" in option.json()["detail"]
        empty = httpx.post(f"{url}/explain", files={"file": ("a.txt", b"hello", "text/plain")}, headers=key)
        assert empty.status_code == 400 and "not an image" in empty.json()["detail"]


def test_a_recognition_model_needs_the_reference(models, monkeypatch):
    seen, explain = {}, Model.explain

    def recorded(self, images, **kwargs):
        seen.update(kwargs)
        return explain(self, images, **kwargs)

    monkeypatch.setattr(Model, "explain", recorded)
    with running(models["recognize"]) as url:
        assert httpx.get(f"{url}/info").json()["explain"]["reference"] is True
        alone = httpx.post(f"{url}/explain", files={"file": ("a.png", png_bytes(), "image/png")})
        pair = httpx.post(f"{url}/explain", files={"file": ("a.png", png_bytes(0), "image/png"),
                                                   "reference": ("b.png", png_bytes(1), "image/png")})
    assert alone.status_code == 422 and "'reference'" in alone.json()["detail"]
    assert pair.status_code == 200, pair.text
    assert len(pair.json()["targets"]) == 1 and decode(pair.json()["targets"][0]["overlay"]).size == (WIDTH, HEIGHT)
    assert isinstance(seen["reference"], Image.Image) and seen["reference"].size == (WIDTH, HEIGHT)


def test_an_exported_model_answers_409(models):
    onnx, _ = export_model(write_checkpoint(models["folder"], "classify"), "onnx", dynamic=True,
                           out=models["folder"] / "c.onnx")
    with running(load(onnx)) as url:
        assert httpx.get(f"{url}/info").json()["explain"] is None  # the page hides its switch
        refused = httpx.post(f"{url}/explain", content=png_bytes())
    assert refused.status_code == 409 and "best.pt" in refused.json()["detail"]
    assert "Traceback" not in refused.text


def test_nothing_to_explain_in_an_embedding():
    model = SimpleNamespace(meta=SimpleNamespace(task="pretrain"), runtime="pytorch", explain=lambda images: [],
                            options_type=NoOptions)
    route = ExplainRoute(SimpleNamespace(predictor=model), Limits(), lambda request, own: {})  # type: ignore[arg-type]
    assert "embeddings" in route.refusal() and route.info() is None


def test_failures_answer_in_one_line(models, monkeypatch):
    def broken(self, images, **kwargs):
        raise RuntimeError("secret detail at /home/someone/model.py")

    monkeypatch.setattr(Model, "explain", broken)
    with running(models["classify"]) as url:
        failed = httpx.post(f"{url}/explain", content=png_bytes())
    assert failed.status_code == 500 and "RuntimeError" in failed.json()["detail"]
    assert "secret" not in failed.text and "Traceback" not in failed.text


def test_health_is_answered_while_explaining_and_the_pool_times_out(models, monkeypatch):
    explain = Model.explain

    def slow(self, images, **kwargs):
        time.sleep(1.2)
        return explain(self, images, **kwargs)

    monkeypatch.setattr(Model, "explain", slow)
    with running(models["classify"]) as url:
        codes: list[int] = []
        worker = threading.Thread(target=lambda: codes.append(
            httpx.post(f"{url}/explain", content=png_bytes(), timeout=60).status_code))
        worker.start()
        time.sleep(0.2)
        waits = []
        while worker.is_alive():
            start = time.perf_counter()
            assert httpx.get(f"{url}/health").status_code == 200
            waits.append(time.perf_counter() - start)
            time.sleep(0.1)
        worker.join()
    assert codes == [200] and len(waits) >= 3 and max(waits) < 0.5
    with running(models["classify"], Limits(timeout_s=0.3)) as url:
        late = httpx.post(f"{url}/explain", content=png_bytes(), timeout=10)
    assert late.status_code == 504 and "took over" in late.json()["detail"]


def test_a_map_as_grey():
    grey = np.asarray(grey_png(np.array([[0, 0.5, 1, np.nan, 2]], np.float32)))
    assert grey.dtype == np.uint8 and grey.tolist() == [[0, 128, 255, 0, 255]]

"""The recognition routes of the server (/verify, /search, /gallery), with a tiny model trained once for the
session on six synthetic identities: a grey 8x8 pattern each, enlarged to 32 px, under noise."""

from __future__ import annotations

import io
import os
import socket
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

import cnnkit
from cnnkit.cli.main import build_parser, main
from cnnkit.errors import CnnkitError
from cnnkit.recognition.gallery import Gallery
from cnnkit.serve.app import Limits, create_app
from tests.export.helpers import write_checkpoint
from tests.serve.conftest import running

IDENTITIES = 6


def face(identity: int, seed: int) -> np.ndarray:
    """A 32 px grey image of ``identity``: its pattern, under noise drawn from ``seed``."""
    pattern = np.random.default_rng(100 + identity).integers(0, 256, (8, 8)).astype(np.float32)
    noise = np.random.default_rng(seed).normal(0, 20, (32, 32))
    return np.clip(np.kron(pattern, np.ones((4, 4))) + noise, 0, 255).astype(np.uint8)


def png(identity: int, seed: int) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(face(identity, seed)).save(buffer, format="PNG")
    return buffer.getvalue()


def part(identity: int, seed: int) -> tuple[str, bytes, str]:
    return f"{identity}-{seed}.png", png(identity, seed), "image/png"


FRESH = 10_000  # seeds from here on: images the model never saw


@pytest.fixture(scope="session")
def trained(tmp_path_factory) -> SimpleNamespace:
    root = tmp_path_factory.mktemp("recognition")
    for identity in range(IDENTITIES):
        folder = root / "faces" / f"id{identity}"
        folder.mkdir(parents=True)
        for i in range(12):
            Image.fromarray(face(identity, 1000 * identity + i)).save(folder / f"{i:02d}.png")
    result = cnnkit.train(task="recognize", data=str(root / "faces"), model="fastnet_small", imgsz=32, epochs=1,
                          val_split=0.34, project=str(root / "runs"), name="r", exist_ok=True)
    weights = result.run_dir / "best.pt"
    return SimpleNamespace(weights=weights, model=cnnkit.load(weights, device="cpu"))


def client(trained, tmp_path: Path, limits: Limits = Limits(), gallery: bool = True,
           allow_enrol: bool = True) -> TestClient:
    return TestClient(create_app(trained.model, limits, tmp_path / "people.npz" if gallery else None, allow_enrol))


def enrol(c: TestClient, identity: int, images: int = 4, headers: dict | None = None) -> httpx.Response:
    files = [("images", part(identity, 1000 * identity + i)) for i in range(images)]
    return c.post("/gallery", data={"name": f"id{identity}"}, files=files, headers=headers or {})


def test_info_openapi_and_page(trained, tmp_path):
    with client(trained, tmp_path) as c:
        rec = c.get("/info").json()["recognition"]
        assert rec["routes"] == ["POST /verify", "POST /search", "GET /gallery", "POST /gallery",
                                 "DELETE /gallery/{name}"]
        assert rec["gallery"] == "people.npz" and rec["identities"] == 0 and rec["enrol"] is True
        assert rec["threshold"] == trained.model.meta.value("threshold", None)
        paths = c.get("/openapi.json").json()["paths"]
        assert {"/verify", "/search", "/gallery", "/gallery/{name}", "/predict"} <= set(paths)
        assert set(paths["/gallery"]) == {"get", "post"} and "multipart/form-data" in str(paths["/verify"]["post"])
        page = c.get("/").text
        assert "Recognise" in page and "Verify" in page and "Enrol" in page
        assert "http://" not in page and "https://" not in page  # offline


def test_verify_same_and_different(trained, tmp_path):
    with client(trained, tmp_path, gallery=False, allow_enrol=False) as c:
        same = c.post("/verify", files={"a": part(1, FRESH), "b": part(1, FRESH + 1)})
        other = c.post("/verify", files={"a": part(1, FRESH), "b": part(4, FRESH + 2)})
        assert same.status_code == other.status_code == 200, same.text
        same_d, other_d = same.json()["distance"], other.json()["distance"]
        assert same_d < other_d
        assert same.json()["threshold"] == trained.model.meta.value("threshold", None)  # the card's by default
        middle = (same_d + other_d) / 2
        same = c.post(f"/verify?threshold={middle}", files={"a": part(1, FRESH), "b": part(1, FRESH + 1)}).json()
        other = c.post(f"/verify?threshold={middle}", files={"a": part(1, FRESH), "b": part(4, FRESH + 2)}).json()
        assert same["same"] is True and other["same"] is False and same["threshold"] == middle
        assert set(same) == {"same", "distance", "threshold", "time_ms"}
        assert c.post("/verify?threshold=3", files={"a": part(1, 0), "b": part(1, 1)}).status_code == 422


def test_enrol_then_search(trained, tmp_path):
    with client(trained, tmp_path) as c:
        for identity in range(4):
            done = enrol(c, identity)
            assert done.status_code == 200, done.text
            assert done.json() == {"name": f"id{identity}", "added": 4, "images": 4, "vectors": 4 * (identity + 1),
                                   "identities": identity + 1}
        found = c.post("/search?k=3", files={"image": part(2, FRESH)}).json()
        assert [m["name"] for m in found["matches"]][0] == "id2" and len(found["matches"]) == 3
        assert "embedding" not in found
        assert c.post("/search?k=1&threshold=2", files={"image": part(2, FRESH)}).json()["identity"] == "id2"
        raw = c.post("/search?k=1&threshold=2", content=png(3, FRESH), headers={"content-type": "image/png"})
        assert raw.json()["identity"] == "id3" and len(raw.json()["matches"]) == 1  # the raw body, as /predict
        stranger = c.post("/search?threshold=0", files={"image": part(5, FRESH)}).json()
        assert stranger["identity"] == "unknown" and not any(m["match"] for m in stranger["matches"])
        listed = c.get("/gallery").json()
        assert listed["identities"] == [{"name": f"id{i}", "images": 4} for i in range(4)]
        assert c.get("/info").json()["recognition"]["identities"] == 4
    on_disk = Gallery.load(tmp_path / "people.npz")  # saved, and still this model's
    assert on_disk.identities() == [(f"id{i}", 4) for i in range(4)] and on_disk.threshold == listed["threshold"]


def test_enrol_more_and_remove(trained, tmp_path):
    with client(trained, tmp_path) as c:
        enrol(c, 0), enrol(c, 1)
        more = enrol(c, 1, images=2).json()
        assert more["added"] == 2 and more["images"] == 6 and more["identities"] == 2
        gone = c.delete("/gallery/id1")
        assert gone.status_code == 200 and gone.json() == {"name": "id1", "removed": 6, "vectors": 4,
                                                            "identities": 1}
        assert [i["name"] for i in c.get("/gallery").json()["identities"]] == ["id0"]
        assert [m["name"] for m in c.post("/search", files={"image": part(1, FRESH)}).json()["matches"]] == ["id0"]
        again = c.delete("/gallery/id1")
        assert again.status_code == 404 and "no identity named 'id1'" in again.json()["detail"]
        assert str(tmp_path) not in again.json()["detail"]  # the file's name only: not the server's folders
    assert Gallery.load(tmp_path / "people.npz").names == ["id0"]


def test_key_required_when_set(trained, tmp_path):
    key = {"X-API-Key": "s3cret"}
    with client(trained, tmp_path, Limits(api_key="s3cret"), allow_enrol=False) as c:
        pair = {"a": part(0, 1), "b": part(0, 2)}
        assert c.post("/verify", files=pair).status_code == 401
        assert c.post("/verify", files=pair, headers={"X-API-Key": "wrong"}).status_code == 401
        assert c.post("/verify", files=pair, headers=key).status_code == 200
        assert c.get("/gallery").status_code == 401
        assert enrol(c, 0).status_code == 401
        assert enrol(c, 0, headers=key).status_code == 200  # a key is enough: no --allow-enrol needed
        assert c.post("/search", files={"image": part(0, FRESH)}).status_code == 401
        assert c.post("/search", files={"image": part(0, FRESH)}, headers=key).status_code == 200
        assert c.delete("/gallery/id0").status_code == 401
        assert c.delete("/gallery/id0", headers={"Authorization": "Bearer s3cret"}).status_code == 200
        assert c.get("/info").json()["recognition"]["enrol"] is True


def test_changing_the_gallery_without_a_key_needs_allow_enrol(trained, tmp_path):
    with client(trained, tmp_path, allow_enrol=False) as c:
        refused = enrol(c, 0)
        assert refused.status_code == 403 and "--allow-enrol" in refused.json()["detail"]
        assert c.delete("/gallery/id0").status_code == 403
        assert c.get("/info").json()["recognition"]["enrol"] is False
        assert c.get("/gallery").json()["identities"] == []  # reading stays open, as /predict
    assert not (tmp_path / "people.npz").exists()
    with client(trained, tmp_path, allow_enrol=True) as c:
        assert enrol(c, 0).status_code == 200 and c.delete("/gallery/id0").status_code == 200


def test_no_gallery_or_an_empty_one(trained, tmp_path):
    with client(trained, tmp_path) as c:  # people.npz does not exist yet
        empty = c.post("/search", files={"image": part(0, FRESH)})
        assert empty.status_code == 409 and "no identities yet" in empty.json()["detail"]
    with client(trained, tmp_path, gallery=False) as c:
        none = c.post("/search", files={"image": part(0, FRESH)})
        assert none.status_code == 409 and "--gallery" in none.json()["detail"]
        assert c.get("/gallery").status_code == 409 and enrol(c, 0).status_code == 409
        assert c.get("/info").json()["recognition"]["gallery"] is None
        assert c.post("/verify", files={"a": part(0, 1), "b": part(0, 2)}).status_code == 200  # needs none


def test_bad_uploads_answer_as_predict_does(trained, tmp_path):
    with client(trained, tmp_path) as c:
        enrol(c, 0)
        predict = c.post("/predict", content=b"not an image")
        verify = c.post("/verify", files={"a": ("a.png", b"not an image", "image/png"), "b": part(0, 1)})
        search = c.post("/search", files={"image": ("q.png", b"not an image", "image/png")})
        bad_enrol = c.post("/gallery", data={"name": "x"}, files=[("images", ("x.png", b"nope", "image/png"))])
        assert predict.status_code == verify.status_code == search.status_code == bad_enrol.status_code == 400
        assert predict.json() == search.json()
        # the forms' errors name the file, as a form has several (regression, user trial)
        assert verify.json()["detail"] == f"field 'a' (a.png): {predict.json()['detail']}"
        assert bad_enrol.json()["detail"] == f"field 'images' (x.png): {predict.json()['detail']}"
        missing = c.post("/verify", files={"a": part(0, 1)})
        assert missing.status_code == 400 and "'b'" in missing.json()["detail"]
        nameless = c.post("/gallery", data={"name": " "}, files=[("images", part(0, 1))])
        assert nameless.status_code == 400 and "name" in nameless.json()["detail"]
        assert c.post("/gallery", data={"name": "x"}).status_code == 400  # no images
    with client(trained, tmp_path, Limits(max_upload_mb=0.001)) as c:
        big = c.post("/verify", files={"a": ("a.png", b"\0" * 5000, "image/png"), "b": part(0, 1)})
        assert big.status_code == 413 and "exceeds" in big.json()["detail"]
    with client(trained, tmp_path, Limits(max_pixels=100)) as c:
        assert c.post("/verify", files={"a": part(0, 1), "b": part(0, 2)}).status_code == 413


def foreign_gallery(trained, path: Path) -> Path:
    gallery = Gallery.new("0123456789abcdef", "another embedder", int(trained.model.meta.value("dim", 0)), 0.5)
    gallery.add("someone", np.ones((1, gallery.dim), np.float32), ["x.png"])
    gallery.save(path)
    return path


def test_a_gallery_of_another_model_is_refused_at_start(trained, tmp_path, capsys):
    path = foreign_gallery(trained, tmp_path / "theirs.npz")
    with pytest.raises(CnnkitError, match="made by another model"):
        create_app(trained.model, Limits(), path)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    assert main(["serve", "--weights", str(trained.weights), "--gallery", str(path), "--port", str(port),
                 "--device", "cpu"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "made by another model" in err and len(err.splitlines()) == 1


def test_a_model_of_another_task_has_no_recognition_routes(tmp_path):
    classify = cnnkit.load(write_checkpoint(tmp_path, "classify"), device="cpu")
    with TestClient(create_app(classify)) as c:
        assert c.post("/verify", files={"a": part(0, 1), "b": part(0, 2)}).status_code == 404
        assert c.get("/gallery").status_code == 404
        assert c.get("/info").json()["recognition"] is None
        assert "/verify" not in c.get("/openapi.json").json()["paths"]
    with pytest.raises(CnnkitError, match="--gallery: a classify model"):
        create_app(classify, Limits(), tmp_path / "people.npz")


def test_serve_flags():
    args = build_parser().parse_args(["serve", "--weights", "w.pt", "--gallery", "g.npz", "--allow-enrol"])
    assert args.gallery == "g.npz" and args.allow_enrol is True
    args = build_parser().parse_args(["serve", "--weights", "w.pt"])
    assert args.gallery is None and args.allow_enrol is False


def test_enrolments_and_searches_at_once(trained, tmp_path):
    """Writes are serialised (none lost); each search sees one whole gallery, never one being changed."""
    path = tmp_path / "people.npz"
    with running(trained.model, Limits(workers=2, queue=64), gallery=path, allow_enrol=True) as url:
        def enrol_one(identity: int) -> int:
            files = [("images", part(identity, 1000 * identity + i)) for i in range(2)]
            return httpx.post(f"{url}/gallery", data={"name": f"id{identity}"}, files=files, timeout=60).status_code

        def search_one(seed: int) -> httpx.Response:
            return httpx.post(f"{url}/search?k=6", files={"image": part(seed % IDENTITIES, FRESH + seed)}, timeout=60)

        with ThreadPoolExecutor(8) as pool:
            enrolled = [pool.submit(enrol_one, i) for i in range(IDENTITIES)]
            searched = [pool.submit(search_one, seed) for seed in range(12)]
            codes = [f.result() for f in enrolled]
            answers = [f.result() for f in searched]
        listed = httpx.get(f"{url}/gallery").json()["identities"]
    assert codes == [200] * IDENTITIES
    for answer in answers:
        assert answer.status_code in (200, 409), answer.text  # 409: before the first enrolment was saved
        names = [m["name"] for m in answer.json().get("matches", [])]
        assert len(set(names)) == len(names) and set(names) <= {f"id{i}" for i in range(IDENTITIES)}
    expected = [(f"id{i}", 2) for i in range(IDENTITIES)]
    assert Gallery.load(path).identities() == expected == [(i["name"], i["images"]) for i in listed]


CHROMIUM = Path(os.environ.get("CNNKIT_CHROMIUM", "/usr/bin/chromium"))


@pytest.mark.browser
@pytest.mark.skipif(not CHROMIUM.is_file(), reason=f"no browser at {CHROMIUM} (apt-get install chromium)")
def test_the_page_enrols_recognises_and_verifies(trained, tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api")
    files = {}
    for identity, seed in [(2, 0), (2, 1), (3, 0), (2, FRESH), (2, FRESH + 1)]:
        files[identity, seed] = tmp_path / f"{identity}-{seed}.png"
        files[identity, seed].write_bytes(png(identity, 1000 * identity + seed if seed < FRESH else seed))
    with running(trained.model, gallery=tmp_path / "people.npz", allow_enrol=True) as url, \
            sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox"])
        try:
            page = browser.new_page()
            page.goto(url + "/")
            page.wait_for_selector("#enrol", state="visible")
            assert not page.is_visible("#drop") and page.is_visible("#verify")
            for name, images in (("id2", [files[2, 0], files[2, 1]]), ("id3", [files[3, 0]])):
                page.fill("#enrol-name", name)
                page.set_input_files("#enrol-files", [str(f) for f in images])
                page.click("#enrol button")
                page.wait_for_function(f"document.getElementById('gal-list').textContent.includes('{name}')")
            assert "enrolled 1 image of id3" in page.text_content("#enrol-status")
            page.set_input_files("#rec-file", str(files[2, FRESH]))
            page.wait_for_selector("body[data-recognised='1']", timeout=30_000)
            assert "id2" in page.text_content("#rec-identity") and page.locator("#rec-matches tr").count() == 3
            page.set_input_files("#ver-a", str(files[2, FRESH]))
            page.set_input_files("#ver-b", str(files[2, FRESH + 1]))
            page.click("#ver-go")
            page.wait_for_selector("body[data-verified='1']", timeout=30_000)
            assert page.text_content("#ver-verdict") in ("same identity", "different identities")
            assert "distance" in page.text_content("#ver-status")
            page.screenshot(path=str(tmp_path / "recognition.png"))
        finally:
            browser.close()


def test_a_gallery_changed_on_disk_is_searched_as_changed(trained, tmp_path):
    """Regression (user trial): the server kept the gallery it had read, so an identity removed with `cnnkit gallery
    remove` beside it still matched."""
    with client(trained, tmp_path) as c:
        enrol(c, 0), enrol(c, 1)
        assert c.post("/search?k=1&threshold=2", files={"image": part(1, FRESH)}).json()["identity"] == "id1"
        outside = Gallery.load(tmp_path / "people.npz")
        outside.remove("id1")
        outside.save()
        assert [i["name"] for i in c.get("/gallery").json()["identities"]] == ["id0"]
        assert c.post("/search?k=1&threshold=2", files={"image": part(1, FRESH)}).json()["identity"] == "id0"

"""cnnkit annotate's routes (FastAPI's TestClient): clicks segment, undo, accept saves, drafts survive a restart."""

from __future__ import annotations

import base64
import io
import json

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from cnnkit.serve.annotate import create_annotate_app
from tests.serve.annotate_fakes import FakeClicker, FakeStore, scenes


def decode(png: str) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(png))))


@pytest.fixture
def folders(tmp_path):
    return scenes(tmp_path / "photos"), tmp_path / "out"


def client_of(store, clicker=None, classes=("object",)) -> TestClient:
    return TestClient(create_annotate_app(store, clicker or FakeClicker(), classes), base_url="http://127.0.0.1")


def test_info_and_the_first_state(folders):
    client = client_of(FakeStore(*folders, ["cat", "dog"]), classes=["cat", "dog"])
    info = client.get("/api/info").json()
    assert info["images"] == 3 and info["classes"] == ["cat", "dog"] and info["clicker"] == "fake"
    assert len(info["colours"]) == 2 and info["layout"] == "segment"
    state = client.get("/api/state/0").json()
    assert state["name"] == "scene0.png" and (state["width"], state["height"]) == (64, 64)
    assert state["clicks"] == [] and state["mask"] is None and state["objects"] == [] and state["images"] == 3
    picture = client.get("/api/image/1")
    assert picture.headers["content-type"] == "image/png"
    assert Image.open(io.BytesIO(picture.content)).size == (64, 64)
    page = client.get("/").text
    assert "<canvas" in page and "http://" not in page and "https://" not in page  # no external assets
    assert client.get("/api/state/3").status_code == 404 and client.get("/api/image/-1").status_code == 404


def test_clicks_segment_and_undo_takes_back_a_click_then_an_object(folders):
    store, clicker = FakeStore(*folders, ["object"]), FakeClicker(radius=8)
    client = client_of(store, clicker)
    state = client.post("/api/click/0", json={"x": 20, "y": 30, "positive": True}).json()
    mask = decode(state["mask"])
    assert mask.shape == (64, 64, 4) and mask[30, 20, 3] == 255 and mask[0, 63, 3] == 0
    assert state["area"] == int((mask[..., 3] > 0).sum()) > 0 and state["seconds"] >= 0
    assert store.draft(0) == [_click(30, 20, True)]  # saved on every click
    state = client.post("/api/click/0", json={"x": 24, "y": 30, "positive": False}).json()
    assert len(state["clicks"]) == 2 and state["clicks"][1] == {"x": 24, "y": 30, "positive": False}
    assert clicker.calls[-1][1] is not None  # the previous mask is fed back
    smaller = state["area"]
    state = client.post("/api/undo/0", json={}).json()
    assert state["undone"] == "click" and len(state["clicks"]) == 1 and state["area"] > smaller
    state = client.post("/api/accept/0", json={"class": "object"}).json()
    assert state["objects"][0]["class"] == "object" and state["clicks"] == [] and state["mask"] is None
    assert state["labels"] and (folders[1] / "masks" / "scene0.png").is_file() and store.draft(0) == []
    state = client.post("/api/undo/0", json={}).json()
    assert state["undone"] == "object" and state["objects"] == [] and state["labels"] is None
    assert client.post("/api/undo/0", json={}).json()["undone"] == ""


def _click(y, x, positive):
    from cnnkit.metrics.clicks import Click

    return Click(y, x, positive)


def test_accept_refuses_nothing_and_unknown_classes(folders):
    client = client_of(FakeStore(*folders, ["object"]))
    answer = client.post("/api/accept/0", json={"class": "object"})
    assert answer.status_code == 409 and "click on an object first" in answer.json()["detail"]
    client.post("/api/click/0", json={"x": 5, "y": 5, "positive": True})
    answer = client.post("/api/accept/0", json={"class": "zebra"})
    assert answer.status_code == 422 and "zebra" in answer.json()["detail"]
    outside = client.post("/api/click/0", json={"x": 64, "y": 5, "positive": True})
    assert outside.status_code == 422 and "outside the 64x64 image" in outside.json()["detail"]


def test_other_sites_cannot_reach_or_change_it(folders):
    client = client_of(FakeStore(*folders, ["object"]))
    assert client.get("/api/info", headers={"host": "evil.example:8010"}).status_code == 400  # DNS rebinding
    assert client.get("/api/info", headers={"host": "localhost:8010"}).status_code == 200
    form = client.post("/api/undo/0", content=b"", headers={"content-type": "text/plain"})  # a cross-site form
    assert form.status_code == 415 and client.post("/api/undo/0", json={}).status_code == 200
    anywhere = TestClient(create_annotate_app(FakeStore(*folders, ["object"]), FakeClicker(), hosts=None))
    assert anywhere.get("/api/info", headers={"host": "annotate.lan"}).status_code == 200


def test_a_clicker_error_is_a_400_with_its_message(folders):
    client = client_of(FakeStore(*folders, ["object"]), FakeClicker(fail=True))
    answer = client.post("/api/click/0", json={"x": 5, "y": 5, "positive": True})
    assert answer.status_code == 400 and answer.json()["detail"] == "the clicker failed; on purpose"


def test_a_draft_comes_back_after_a_restart(folders):
    client = client_of(FakeStore(*folders, ["object"]))
    client.post("/api/click/2", json={"x": 10, "y": 12, "positive": True})
    client.post("/api/click/2", json={"x": 40, "y": 40, "positive": True})
    again = client_of(FakeStore(*folders, ["object"]))  # a new server over the same folders
    state = again.get("/api/state/2").json()
    assert [(c["x"], c["y"]) for c in state["clicks"]] == [(10, 12), (40, 40)] and state["area"] > 0
    state = again.post("/api/undo/2", json={}).json()  # the earlier mask was never kept: computed again
    assert len(state["clicks"]) == 1 and decode(state["mask"])[12, 10, 3] == 255
    assert decode(state["mask"])[40, 40, 3] == 0


def test_done_counts_and_accepted_objects_are_drawn_in_their_colours(folders):
    store = FakeStore(*folders, ["cat", "dog"])
    client = client_of(store, classes=["cat", "dog"])
    client.post("/api/click/1", json={"x": 32, "y": 32, "positive": True})
    state = client.post("/api/accept/1", json={"class": "dog"}).json()
    colours = client.get("/api/info").json()["colours"]
    labels = decode(state["labels"])
    assert list(labels[32, 32, :3]) == colours[1] and labels[32, 32, 3] > 0 and labels[0, 0, 3] == 0
    state = client.post("/api/done/1", json={}).json()
    assert state["done"] and state["images_done"] == 1
    assert [s["done"] for s in client.get("/api/images").json()] == [False, True, False]


@pytest.mark.slow
def test_with_cnnkit_store_and_the_seeded_clicker(folders):
    """The real parts: SeedClicker (cnnkit.grow) segments the shape under a click; the store writes the mask."""
    from cnnkit.annotate import AnnotationStore, SeedClicker
    from cnnkit.data.synthetic import make_scene

    scene = make_scene(0, seed=3, size=64)  # scenes() drew scene0.png from it
    target = scene.instances[-1]  # the last drawn shape: whole, nothing over it
    y, x = (int(v) for v in np.argwhere(target)[len(np.argwhere(target)) // 2])
    store = AnnotationStore(*folders, ["shape"])
    client = client_of(store, SeedClicker(), classes=["shape"])
    state = client.post("/api/click/0", json={"x": x, "y": y, "positive": True}).json()
    assert state["clicker"] == "seeded" and state["area"] > 0
    mask = decode(state["mask"])[..., 3] > 0
    assert (mask & target).sum() / (mask | target).sum() > 0.5  # IoU: the seeded method finds most of the shape
    state = client.post("/api/accept/0", json={"class": "shape"}).json()
    saved = np.asarray(Image.open(folders[1] / "masks" / "scene0.png"))
    assert state["objects"][0]["class"] == "shape" and saved[y, x] == 1
    assert (folders[1] / "images" / "scene0.png").is_file()


def test_instance_layout_colours_each_object_by_its_class(folders):
    from cnnkit.annotate import AnnotationStore

    store = AnnotationStore(*folders, ["cat", "dog"], layout="instance")
    client = client_of(store, FakeClicker(radius=6), classes=["cat", "dog"])
    for x, name in ((15, "dog"), (45, "cat")):
        client.post("/api/click/0", json={"x": x, "y": 20, "positive": True})
        state = client.post("/api/accept/0", json={"class": name}).json()
    colours = client.get("/api/info").json()["colours"]
    labels = decode(state["labels"])
    assert list(labels[20, 15, :3]) == colours[1] and list(labels[20, 45, :3]) == colours[0]
    assert [o["class"] for o in state["objects"]] == ["dog", "cat"]
    assert set(np.unique(np.asarray(Image.open(folders[1] / "masks" / "scene0.png")))) == {0, 1, 2}


def test_clicks_must_be_whole_numbers_and_booleans(folders):
    # regression: NaN was a 500 with a traceback in the log, and "yes" counted as a positive click
    client = client_of(FakeStore(*folders, ["object"]))
    for body in ({"x": float("nan"), "y": 3}, {"x": 2.5, "y": 3}, {"x": 2, "y": 3, "positive": "yes"},
                 {"x": "2", "y": 3}):
        answer = client.post("/api/click/0", content=json.dumps(body),
                             headers={"Content-Type": "application/json"})
        assert answer.status_code == 422, body
    assert client.post("/api/click/0", json={"x": 2, "y": 3, "positive": False}).status_code == 200

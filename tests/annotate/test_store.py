"""The data set an annotation session writes: read back by cnnkit's own readers, continued after a restart,
undone, and refused with a clear error where it cannot be written."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import cnnkit.annotate.store as store_module
from cnnkit.annotate import AnnotationStore
from cnnkit.data.instance_data import read_instance
from cnnkit.data.request import DataRequest
from cnnkit.data.segment import load_segment_data
from cnnkit.errors import CnnkitError
from cnnkit.metrics.clicks import Click

H, W = 24, 32


@pytest.fixture
def source(tmp_path: Path) -> Path:
    """Three small images: two PNGs and a JPEG (copied byte for byte, never re-encoded)."""
    folder = tmp_path / "photos"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for name in ("a.png", "b.png", "c.jpg"):
        Image.fromarray(rng.integers(0, 255, (H, W, 3), dtype=np.uint8)).save(folder / name)
    return folder


def box(top: int, left: int, bottom: int, right: int) -> np.ndarray:
    mask = np.zeros((H, W), bool)
    mask[top:bottom, left:right] = True
    return mask


def test_segment_layout_reads_back_with_the_segment_reader(source, tmp_path):
    out = tmp_path / "out"
    store = AnnotationStore(source, out, ["cell", "dot"])
    assert [p.name for p in store.images] == ["a.png", "b.png", "c.jpg"]
    store.accept(0, box(2, 2, 12, 12), "cell")
    store.accept(0, box(8, 8, 16, 16), "dot")  # overlaps the cell: painted over it
    written = store.accept(2, box(0, 0, 5, 5), "dot")
    assert written == out / "masks" / "c.png"
    expected = np.zeros((H, W), np.uint8)
    expected[2:12, 2:12] = 1
    expected[8:16, 8:16] = 2
    assert np.array_equal(store.label_map(0), expected)
    assert store.objects(0) == [{"class": "cell", "area": 100 - 16}, {"class": "dot", "area": 64}]
    assert (out / "images" / "c.jpg").read_bytes() == (source / "c.jpg").read_bytes()
    assert not (out / "images" / "b.png").exists()  # untouched images stay out of the data set
    data = load_segment_data(DataRequest(str(out), split="all"))
    assert data.spec.names == ["background", "cell", "dot"]
    by_name = {Path(p).name: m for p, m in zip(data.val.paths, data.val.masks)}
    assert sorted(by_name) == ["a.png", "c.jpg"]
    assert np.array_equal(np.asarray(by_name["a.png"]), expected)
    assert not list(out.rglob("*.tmp"))


def test_instance_layout_reads_back_with_the_instance_reader(source, tmp_path):
    out = tmp_path / "out"
    store = AnnotationStore(source, out, ["cell", "dot"], layout="instance")
    store.accept(1, box(2, 2, 12, 12), "cell")
    store.accept(1, box(14, 14, 20, 30), "dot")
    store.accept(1, box(3, 3, 6, 6), "cell")  # inside the first cell: a later object paints over it
    found = read_instance(str(out))
    assert found.classes == ["cell", "dot"]
    (item,) = found.splits["all"]
    assert Path(item.image).name == "b.png"
    objects = item.objects.window((0, 0, H, W))
    assert objects["labels"].tolist() == [0, 1, 0]
    assert objects["masks"].sum(axis=(1, 2)).tolist() == [100 - 9, 16 * 6, 9]
    assert np.array_equal(store.label_map(1), np.asarray(Image.open(out / "masks" / "b.png")))


def test_a_hidden_object_leaves_the_instance_map_and_comes_back_on_undo(source, tmp_path):
    store = AnnotationStore(source, tmp_path / "out", ["cell"], layout="instance")
    store.accept(0, box(4, 4, 8, 8), "cell")
    store.accept(0, box(0, 0, 12, 12), "cell")  # covers the first entirely
    assert store.label_map(0).max() == 1 and [o["area"] for o in store.objects(0)] == [0, 144]
    assert store.undo(0)
    assert store.label_map(0).max() == 1 and store.objects(0) == [{"class": "cell", "area": 16}]


def test_reopening_continues_and_undo_and_drafts_survive_a_restart(source, tmp_path):
    out = tmp_path / "out"
    first = AnnotationStore(source, out, ["cell"])
    first.accept(0, box(0, 0, 4, 4), "cell")
    first.accept(0, box(10, 10, 14, 14), "cell")
    first.save_draft(1, [Click(3, 4, True), (5, 6, False)])
    first.mark_done(2)
    again = AnnotationStore(source, out)  # no classes: the stored ones
    assert again.classes == ["cell"]
    assert [(s["objects"], s["done"]) for s in again.status()] == [(2, False), (0, False), (0, True)]
    assert again.draft(1) == [Click(3, 4, True), Click(6, 5, False)]
    assert again.undo(0)
    assert np.asarray(Image.open(out / "masks" / "a.png")).sum() == 16  # one 4x4 object left, class 1
    assert again.undo(0) and not again.undo(0)
    assert not (out / "masks" / "a.png").exists() and not (out / "images" / "a.png").exists()
    assert not np.asarray(Image.open(out / "masks" / "c.png")).any()  # done without objects: all background
    again.accept(1, box(0, 0, 2, 2), "cell")
    assert again.draft(1) == []  # accepting ends the object in progress
    more = AnnotationStore(source, out, ["cell", "nucleus"])  # classes may be added after the stored ones
    assert more.classes == ["cell", "nucleus"]
    with pytest.raises(CnnkitError, match="keep them first"):
        AnnotationStore(source, out, ["nucleus", "cell"])
    with pytest.raises(CnnkitError, match="--layout segment"):
        AnnotationStore(source, out, ["cell"], layout="instance")


def test_an_image_removed_from_the_source_keeps_its_annotation(source, tmp_path):
    out = tmp_path / "out"
    AnnotationStore(source, out, ["cell"]).accept(0, box(0, 0, 4, 4), "cell")
    (source / "a.png").unlink()
    store = AnnotationStore(source, out)
    assert [s["name"] for s in store.status()] == ["b.png", "c.jpg"]
    store.accept(0, box(0, 0, 3, 3), "cell")
    data = load_segment_data(DataRequest(str(out), split="all"))
    assert sorted(Path(p).name for p in data.val.paths) == ["a.png", "b.png"]


def test_bad_requests_are_refused_with_the_fix(source, tmp_path):
    store = AnnotationStore(source, tmp_path / "out", ["background", "cell"])
    assert store.classes == ["cell"]  # the background is class 0 already
    with pytest.raises(CnnkitError, match=r"mask of shape \[3, 3\]"):
        store.accept(0, np.ones((3, 3), bool), "cell")
    with pytest.raises(CnnkitError, match="empty mask"):
        store.accept(0, np.zeros((H, W), bool), "cell")
    with pytest.raises(CnnkitError, match="not one of cell"):
        store.accept(0, box(0, 0, 2, 2), "dog")
    with pytest.raises(CnnkitError, match=r"image index 3: there are 3 images \(0..2\)"):
        store.undo(3)
    with pytest.raises(CnnkitError, match="no classes"):
        AnnotationStore(source, tmp_path / "fresh", [])
    with pytest.raises(CnnkitError, match="layout 'coco'"):
        AnnotationStore(source, tmp_path / "fresh", ["cell"], layout="coco")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CnnkitError, match="no images"):
        AnnotationStore(tmp_path / "empty", tmp_path / "fresh", ["cell"])
    with pytest.raises(CnnkitError, match="not a folder"):
        AnnotationStore(tmp_path / "missing", tmp_path / "fresh", ["cell"])
    with pytest.raises(CnnkitError, match="the source folder"):
        AnnotationStore(source, source, ["cell"])


def test_a_folder_that_cannot_be_written_is_named_with_the_fix(source, tmp_path, monkeypatch):
    def refuse(path, data):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(store_module, "atomic_write_bytes", refuse)
    out = tmp_path / "locked"
    with pytest.raises(CnnkitError, match=f"{out}: cannot write the annotations there.*--out"):
        AnnotationStore(source, out, ["cell"])


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_out_folder_is_refused(source, tmp_path):
    out = tmp_path / "locked"
    out.mkdir()
    out.chmod(0o555)
    try:
        with pytest.raises(CnnkitError, match="cannot write the annotations"):
            AnnotationStore(source, out, ["cell"])
    finally:
        out.chmod(0o755)


def test_the_store_and_the_click_api_import_without_torch():
    # the page's bookkeeping loads before (and without) any model; torch comes with the first click
    code = "import sys, cnnkit.annotate; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_a_failed_accept_leaves_the_data_set_as_it_was(source, tmp_path, monkeypatch):
    # regression: the image was copied, the mask failed, and `cnnkit data check` then found an image without a mask
    out = tmp_path / "out"
    store = AnnotationStore(source, out, ["cell"])
    store.save_draft(1, [Click(3, 4, True)])
    real = store_module.atomic_write_bytes

    def refuse_masks(path, data):
        if Path(path).parent.name == "masks":
            raise PermissionError(13, "Permission denied", str(path))
        real(path, data)

    monkeypatch.setattr(store_module, "atomic_write_bytes", refuse_masks)
    with pytest.raises(CnnkitError, match="cannot write"):
        store.accept(1, box(2, 2, 8, 8), "cell")
    assert not (out / "images" / "b.png").exists() and not store.objects(1)
    assert store.draft(1) == [Click(3, 4, True)]
    monkeypatch.setattr(store_module, "atomic_write_bytes", real)
    store.accept(1, box(2, 2, 8, 8), "cell")
    assert (out / "images" / "b.png").is_file() and (out / "masks" / "b.png").is_file()


def test_a_second_annotator_on_one_folder_is_refused(tmp_path):
    # regression: two servers on one --out wrote over each other's objects
    first = store_module.hold_folder(tmp_path / "out")
    try:
        with pytest.raises(CnnkitError, match="another cnnkit annotate is writing"):
            store_module.hold_folder(tmp_path / "out")
    finally:
        first.close()
    store_module.hold_folder(tmp_path / "out").close()  # free again once the first closed


def test_the_objects_are_decoded_once_until_they_change(source, tmp_path, monkeypatch):
    # the page asks for objects and the label map after every click: an image of hundreds of nuclei decoded
    # hundreds of mask files each time
    store = AnnotationStore(source, tmp_path / "out", ["cell"])
    store.accept(0, box(1, 1, 5, 5), "cell")
    store.accept(0, box(3, 3, 9, 9), "cell")
    opened = []
    real = store_module.Image.open
    monkeypatch.setattr(store_module.Image, "open", lambda *a, **k: opened.append(a) or real(*a, **k))
    store.objects(0), store.label_map(0), store.objects(0)
    assert len(opened) <= 2  # once per object at most, not per call
    opened.clear()
    store.undo(0)
    assert [o["area"] for o in store.objects(0)] == [16] and len(opened) <= 1  # changed: as one object again

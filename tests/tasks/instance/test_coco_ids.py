"""coco_results.json in the ids of the COCO file a model was trained on, so that it scores against that
file as it is; other images and models numbered, and said."""

import contextlib
import io
import json
import logging
from pathlib import Path

from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from cnnkit.meta import ModelMeta
from cnnkit.tasks import get_task
from cnnkit.tasks.instance.draw import write_results
from tests.data.test_instance_data import crowd_coco


def card(**extra) -> ModelMeta:
    """A detector's card for the classes cell and dust, with the task's own ``extra`` values."""
    return ModelMeta.card(task="detect", model="m", classes=["cell", "dust"], in_chans=3, mean=[0.5] * 3,
                          std=[0.2] * 3, extra=extra)


def records(root: Path, names: list[str]) -> list[dict]:
    """What `cnnkit predict` gives write_results: per image its path, size [W, H] and the objects found
    (the ground truth's cell and dust, as class ids 0 and 1)."""
    cell = {"class": "cell", "class_id": 0, "score": 0.9, "box": [2, 2, 14, 14]}
    dust = {"class": "dust", "class_id": 1, "score": 0.8, "box": [16, 2, 24, 10]}
    return [{"path": str(root / "images" / n), "size": [50, 40], "instances": [cell, dust]} for n in names]


def test_results_carry_the_source_category_and_image_ids(tmp_path: Path, caplog):
    source = crowd_coco(tmp_path / "d", images=3)
    from cnnkit.config import make_config

    cfg = make_config({"task": "detect", "data": str(source), "model": "fasterrcnn_resnet18", "imgsz": 32,
                       "val_split": 0.34})
    data = get_task("detect").build_data(cfg)
    meta = data.meta  # the card training writes
    assert meta.value("coco_category_ids", []) == [3, 17] and meta.value("coco_files", []) == [str(source.resolve())]
    # crowd regions: never a training target; in evaluation, ground truth flagged iscrowd for COCOeval
    assert all(data.train[i][1]["iscrowd"].sum() == 0 for i in range(len(data.train)))
    assert all(data.val[i][1]["iscrowd"].tolist() == [0, 0, 1] for i in range(len(data.val)))
    caplog.set_level(logging.INFO, logger="cnnkit")
    path = write_results(records(tmp_path / "d", ["0.png", "1.png", "2.png"]), meta, tmp_path)
    results = json.loads(path.read_text())
    assert {r["category_id"] for r in results} == {3, 17} and {r["image_id"] for r in results} == {100, 101, 102}
    listed = json.loads((tmp_path / "coco_images.json").read_text())
    assert listed["categories"] == [{"id": 3, "name": "cell"}, {"id": 17, "name": "dust"}]
    assert "image and category ids are those of" in caplog.text
    with contextlib.redirect_stdout(io.StringIO()):  # scored against the user's own file, as it is
        truth = COCO(str(source))
        ev = COCOeval(truth, truth.loadRes(str(path)), "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    assert ev.stats[1] > 0.99  # AP50: every object found, the crowd regions ignored


def test_images_not_in_the_source_are_numbered_after_its_ids(tmp_path: Path, caplog):
    source = crowd_coco(tmp_path / "d", images=2)
    meta = card(coco_category_ids=[3, 17], coco_files=[str(source)])
    caplog.set_level(logging.INFO, logger="cnnkit")
    (tmp_path / "other").mkdir()
    given = records(tmp_path / "d", ["1.png"]) + [{**records(tmp_path, ["x.png"])[0], "path": str(tmp_path / "x.png")}]
    results = json.loads(write_results(given, meta, tmp_path / "other").read_text())
    assert [r["image_id"] for r in results] == [101, 101, 102, 102]
    assert "1 of 2 images are not listed there" in caplog.text and "102..102" in caplog.text


def test_without_a_coco_source_ids_are_numbered_and_said(tmp_path: Path, caplog):
    caplog.set_level(logging.INFO, logger="cnnkit")
    results = json.loads(write_results(records(tmp_path, ["a.png", "b.png"]), card(), tmp_path).read_text())
    assert {r["category_id"] for r in results} == {1, 2} and {r["image_id"] for r in results} == {1, 2}
    assert "image ids 1..2 number the images in the order of predictions.json" in caplog.text
    gone = card(coco_category_ids=[3, 17], coco_files=[str(tmp_path / "gone.json")])
    results = json.loads(write_results(records(tmp_path, ["a.png"]), gone, tmp_path).read_text())
    assert {r["category_id"] for r in results} == {3, 17} and {r["image_id"] for r in results} == {1}
    assert "could not be read here" in caplog.text

"""The instance and detect tasks through the CLI: train, val, predict (whole and tiled), data convert."""

import contextlib
import io
import json

import numpy as np
import pytest
from PIL import Image

from cnnkit.cli.main import main
from cnnkit.data.synthetic import make_scene
from tests.data.test_instance_data import coco_file, crowd_coco, write_maps

TINY = "model_args:\n  fpn_channels: 16\n  mask_channels: 16\n  box_batch: 32\n  detections: 20\n"


def train(tmp_path, task: str, data: str, model: str, name: str) -> int:
    recipe = tmp_path / "tiny.yaml"
    recipe.write_text(TINY)
    return main(["train", task, "--config", str(recipe), "--data", data, "--model", model, "--epochs", "1",
                 "--batch", "2", "--imgsz", "48", "--no-verbose", "--project", str(tmp_path / "runs"), "--name", name])


@pytest.mark.slow
def test_train_val_predict_instance(tmp_path, capsys):
    data = tmp_path / "d"
    write_maps(data, n=8, classes=True)
    assert train(tmp_path, "instance", str(data), "maskrcnn_mobilenet_v3_small", "i") == 0
    run = tmp_path / "runs" / "instance" / "i"
    for name in ("best.pt", "last.pt", "config.yaml", "metrics.csv", "mask_pr_curve.png", "mask_ap_per_class.csv"):
        assert (run / name).exists(), name
    assert "mask_ap50" in (run / "metrics.csv").read_text().splitlines()[0]

    assert main(["val", "--weights", str(run / "best.pt"), "--data", str(data), "--out", str(tmp_path / "v")]) == 0
    assert "mask_ap=" in capsys.readouterr().out
    assert 0 <= json.loads((tmp_path / "v" / "metrics.json").read_text())["box_ap50"] <= 1

    big = tmp_path / "big.png"
    Image.fromarray(make_scene(1, 5, 160, max_distractors=3).image).save(big)
    assert main(["predict", "--weights", str(run / "best.pt"), str(big), str(data / "images"), "--score-thresh",
                 "0.0", "--max-det", "5", "--out", str(tmp_path / "p")]) == 0
    preds = json.loads((tmp_path / "p" / "predictions.json").read_text())
    assert len(preds) == 9 and preds[0]["size"] == [160, 160] and len(preds[0]["instances"]) <= 5
    ids = np.asarray(Image.open(tmp_path / "p" / "big_instances.png"))
    assert ids.shape == (160, 160) and (tmp_path / "p" / "big_overlay.png").exists()
    results = json.loads((tmp_path / "p" / "coco_results.json").read_text())
    assert all({"image_id", "category_id", "bbox", "score", "segmentation"} <= set(r) for r in results)

    # tiled: 160 px is over four 48 px crops, so auto tiles; an explicit tile side works too
    assert main(["predict", "--weights", str(run / "best.pt"), str(big), "--tile", "64", "--overlap", "0.3",
                 "--score-thresh", "0.0", "--out", str(tmp_path / "t")]) == 0
    assert (tmp_path / "t" / "big_instances.png").exists()


@pytest.mark.slow
def test_detect_on_coco_boxes(tmp_path):
    anns = [{"id": i + 1, "image_id": i % 2 + 1, "category_id": 7 + 2 * (i % 2), "bbox": [5 + i, 5, 12, 10]}
            for i in range(4)]
    data = coco_file(tmp_path, anns)
    assert train(tmp_path, "detect", str(data), "fasterrcnn_resnet18", "d") == 0
    run = tmp_path / "runs" / "detect" / "d"
    assert "box_ap" in (run / "metrics.csv").read_text() and not (run / "mask_pr_curve.png").exists()
    assert main(["predict", "--weights", str(run / "best.pt"), str(tmp_path / "images"), "--out",
                 str(tmp_path / "p"), "--score-thresh", "0.0"]) == 0
    preds = json.loads((tmp_path / "p" / "predictions.json").read_text())
    assert all("rle" not in inst for p in preds for inst in p["instances"])


@pytest.mark.slow
def test_coco_results_in_the_ids_of_the_source_file(tmp_path):
    """Regression: a model trained on COCO categories 3 and 17, images 100..103, wrote categories 1, 2 and
    images 1..4, which cannot be scored against the user's own file. Crowd regions are in that file too."""
    from pycocotools.coco import COCO

    source = crowd_coco(tmp_path / "d", images=4)
    assert train(tmp_path, "detect", str(source), "fasterrcnn_resnet18", "c") == 0
    assert main(["predict", "--weights", str(tmp_path / "runs" / "detect" / "c" / "best.pt"), str(tmp_path / "d"),
                 "--out", str(tmp_path / "p"), "--score-thresh", "0.0"]) == 0
    listed = json.loads((tmp_path / "p" / "coco_images.json").read_text())
    assert sorted(im["id"] for im in listed["images"]) == [100, 101, 102, 103]
    assert [c["id"] for c in listed["categories"]] == [3, 17]
    results = json.loads((tmp_path / "p" / "coco_results.json").read_text())
    assert {r["category_id"] for r in results} <= {3, 17} and {r["image_id"] for r in results} <= {100, 101, 102, 103}
    if results:  # an untrained model may find nothing at all
        with contextlib.redirect_stdout(io.StringIO()):
            COCO(str(source)).loadRes(str(tmp_path / "p" / "coco_results.json"))


def test_bad_annotations_exit_2_with_one_line(tmp_path, capsys):
    data = coco_file(tmp_path, [{"id": 1, "image_id": 1, "category_id": 3, "bbox": [1, 1, 5, 5]}])
    assert train(tmp_path, "detect", str(data), "fasterrcnn_resnet18", "bad") == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "train.json" in err and "unknown category 3" in err
    assert len(err.splitlines()) == 1


def test_instance_task_refuses_boxes_only_data(tmp_path, capsys):
    data = coco_file(tmp_path, [{"id": 1, "image_id": 1, "category_id": 7, "bbox": [1, 1, 5, 5]}])
    assert train(tmp_path, "instance", str(data), "maskrcnn_resnet18", "x") == 2
    assert "--task detect" in capsys.readouterr().err


def test_data_convert_command(tmp_path, capsys):
    write_maps(tmp_path / "maps", n=3)
    assert main(["data", "convert", str(tmp_path / "maps"), "--to", "yolo", "--out", str(tmp_path / "y")]) == 0
    assert len(list((tmp_path / "y" / "labels").glob("*.txt"))) == 3
    assert main(["data", "convert", str(tmp_path / "maps"), "--to", "yolo", "--out", str(tmp_path / "y")]) == 2
    assert "not empty" in capsys.readouterr().err

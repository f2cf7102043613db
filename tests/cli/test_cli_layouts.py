"""Each published layout trains, validates and converts through the CLI with no hand-made folders."""

import json

import pytest

from cnnkit.cli.main import main
from tests.cli.test_cli_instance import train as train_instance
from tests.cli.test_cli_segment import TRAIN as TRAIN_SEGMENT
from tests.data.test_instance_layouts import ultralytics
from tests.data.test_segment_layouts import cityscapes, write_split


@pytest.mark.slow
def test_ultralytics_layout_trains_validates_converts(tmp_path, capsys):
    root = ultralytics(tmp_path / "mine", n=4)
    assert train_instance(tmp_path, "instance", str(root), "maskrcnn_mobilenet_v3_small", "y") == 0
    weights = tmp_path / "runs" / "instance" / "y" / "best.pt"
    assert main(["val", "--weights", str(weights), "--data", str(root / "data.yaml"), "--out",
                 str(tmp_path / "v")]) == 0
    assert "4 images" in capsys.readouterr().out  # images/val2017, as the yaml says
    assert main(["data", "convert", str(root), "--to", "coco", "--out", str(tmp_path / "c")]) == 0
    coco = json.loads((tmp_path / "c" / "val" / "annotations.json").read_text())
    assert len(coco["images"]) == 4 and [c["name"] for c in coco["categories"]][0] == "circle"


@pytest.mark.parametrize("layout", ["segnet", "cityscapes"])
def test_segmentation_layouts_train_and_validate(tmp_path, capsys, layout):
    root = tmp_path / layout
    if layout == "segnet":
        for split, n, seed in (("train", 6, 1), ("val", 3, 2), ("test", 3, 3)):
            write_split(root / split, root / f"{split}annot", n, seed)
    else:
        cityscapes(root)
    assert main([*TRAIN_SEGMENT, "--data", str(root), "--imgsz", "24", "--project", str(tmp_path / "runs"),
                 "--name", layout]) == 0
    run = tmp_path / "runs" / "segment" / layout
    if layout == "segnet":
        assert json.loads((run / "test" / "metrics.json").read_text())["miou"] >= 0  # test/ scored once
    capsys.readouterr()
    assert main(["val", "--weights", str(run / "best.pt"), "--data", str(root), "--out", str(tmp_path / "v")]) == 0
    out = capsys.readouterr().out
    assert ("3 images" if layout == "segnet" else "2 images") in out
    if layout == "cityscapes":
        assert "road" in out and "car" in out

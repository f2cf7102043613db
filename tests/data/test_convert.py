"""Converters: instance maps -> COCO -> YOLO -> instance maps keep every object (mask IoU >= 0.99)."""

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cnnkit.data.convert import convert, mask_iou, mask_to_polygons, polygons_to_mask
from cnnkit.data.instance_data import read_split
from cnnkit.data.synthetic import make_scene
from cnnkit.errors import CnnkitError
from tests.data.test_instance_data import write_maps


def objects(root: Path) -> list[list[np.ndarray]]:
    items = read_split(root, False, None)[0]
    return [[m.astype(bool) for m in i.objects.window((0, 0, *i.objects.size))["masks"]] for i in items]


def matched_ious(a: list[np.ndarray], b: list[np.ndarray]) -> list[float]:
    """Each object of ``a`` against its best match in ``b``."""
    return [max((mask_iou(m, n) for n in b), default=0.0) for m in a]


def test_mask_polygon_mask_round_trip_on_shapes():
    ious = []
    for i in range(40):
        scene = make_scene(i, 0, 96, max_distractors=3)
        for mask in scene.instances:
            filled = mask_to_polygons(mask)
            back = polygons_to_mask(filled, mask.shape)
            if mask_iou(back, mask) < 0.99:  # only objects with holes (an occluder inside) may fall short
                holes = polygons_to_mask(mask_to_polygons(mask), mask.shape) & ~mask
                assert holes.sum() > 0
            else:
                ious.append(mask_iou(back, mask))
    assert len(ious) > 80 and min(ious) >= 0.99


def test_round_trip_maps_coco_yolo_maps(tmp_path: Path):
    write_maps(tmp_path / "src", n=5, classes=True)
    convert(str(tmp_path / "src"), "coco", str(tmp_path / "coco"))
    convert(str(tmp_path / "coco" / "annotations.json"), "yolo", str(tmp_path / "yolo"))
    convert(str(tmp_path / "yolo"), "masks", str(tmp_path / "maps"))
    original = objects(tmp_path / "src")
    coco = json.loads((tmp_path / "coco" / "annotations.json").read_text())
    assert [c["name"] for c in coco["categories"]] == ["circle", "square", "triangle", "star"]
    for step in ("coco/annotations.json", "maps"):
        converted = objects(tmp_path / step)
        for a, b in zip(original, converted):
            assert len(a) == len(b)
    exact = objects(tmp_path / "coco/annotations.json")  # COCO keeps holes as RLE: every object exact
    assert all(min(matched_ious(a, b)) >= 0.99 for a, b in zip(original, exact))
    final = objects(tmp_path / "maps")
    ious = [i for a, b in zip(original, final) for i in matched_ious(a, b)]
    assert np.median(ious) >= 0.99 and min(ious) > 0.5  # YOLO polygons fill holes
    assert (tmp_path / "yolo" / "classes.txt").read_text().split() == ["circle", "square", "triangle", "star"]


def test_convert_keeps_splits_and_refuses_a_full_folder(tmp_path: Path):
    write_maps(tmp_path / "src" / "train", n=3)
    write_maps(tmp_path / "src" / "val", n=2)
    convert(str(tmp_path / "src"), "coco", str(tmp_path / "out"))
    assert (tmp_path / "out" / "train" / "annotations.json").is_file()
    assert len(json.loads((tmp_path / "out" / "val" / "annotations.json").read_text())["images"]) == 2
    with pytest.raises(CnnkitError, match="not empty"):
        convert(str(tmp_path / "src"), "yolo", str(tmp_path / "out"))


def test_crowd_regions_are_not_written_as_objects(tmp_path: Path, caplog):
    """COCO's iscrowd 1 marks a region to ignore: YOLO files and instance maps cannot mark one, so it is
    left out (and counted) rather than written as an object; COCO output keeps it as a crowd region."""
    from tests.data.test_instance_data import crowd_coco

    source = crowd_coco(tmp_path / "src")
    convert(str(source), "yolo", str(tmp_path / "yolo"))
    lines = (tmp_path / "yolo" / "labels" / "0.txt").read_text().splitlines()
    assert [line.split()[0] for line in lines] == ["0", "1"]  # the cell and the dust; no third object
    assert "2 crowd regions" in caplog.text
    convert(str(source), "masks", str(tmp_path / "maps"))
    assert sorted(np.unique(np.asarray(Image.open(tmp_path / "maps" / "masks" / "0.png"))).tolist()) == [0, 1, 2]
    assert json.loads((tmp_path / "maps" / "masks" / "0.json").read_text()) == {"1": "cell", "2": "dust"}
    convert(str(source), "coco", str(tmp_path / "coco"))
    coco = json.loads((tmp_path / "coco" / "annotations.json").read_text())
    assert [a["iscrowd"] for a in coco["annotations"]] == [0, 0, 1] * 2

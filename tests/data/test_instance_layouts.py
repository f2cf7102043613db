"""Instance data sets laid out exactly as their publishers ship them (Ultralytics, Roboflow, COCO),
found with no hand-made folders; splits assigned by one rule."""

import json
import logging
from pathlib import Path

import numpy as np
import pytest

from cnnkit.data.convert import convert, mask_to_polygons
from cnnkit.data.instance import InstanceDataset
from cnnkit.data.instance_data import load_instance_data
from cnnkit.data.instance_layouts import COCO80, label_path
from cnnkit.data.request import DataRequest
from cnnkit.data.synthetic import SHAPE_NAMES, make_scene
from cnnkit.errors import CnnkitError
from tests.conftest import write_png

SIZE = 48


@pytest.fixture(autouse=True)
def _info_log(caplog):
    caplog.set_level(logging.INFO, logger="cnnkit")  # what the loaders say is part of what is tested


def yolo_line(mask: np.ndarray, cls: int) -> str:
    poly = np.asarray(mask_to_polygons(mask)[0]).reshape(-1, 2) / [SIZE, SIZE]
    return f"{cls} " + " ".join(f"{v:.5f}" for v in poly.ravel())


def write_yolo_split(image_dir: Path, label_dir: Path, n: int, seed: int, empty: int = 1) -> None:
    """n scenes as JPEGs with YOLO polygon labels; the last ``empty`` images have no label file."""
    for i in range(n):
        scene = make_scene(i, seed, SIZE, max_distractors=3)
        write_png(image_dir / f"{seed}_{i:03d}.jpg", scene.image)
        if i < n - empty:
            lines = [yolo_line(m, int(c)) for m, c in zip(scene.instances, scene.instance_classes)]
            label_dir.mkdir(parents=True, exist_ok=True)
            (label_dir / f"{seed}_{i:03d}.txt").write_text("\n".join(lines) + "\n")


def ultralytics(root: Path, names: bool = True, n: int = 6) -> Path:
    """images/train2017 + labels/train2017 (and val2017), a data.yaml with another machine's path."""
    for split, seed in (("train2017", 0), ("val2017", 1)):
        write_yolo_split(root / "images" / split, root / "labels" / split, n, seed)
    if names:
        table = "\n".join(f"  {i}: {name}" for i, name in enumerate(SHAPE_NAMES))
        (root / "data.yaml").write_text(f"path: ../datasets/mine\ntrain: images/train2017\nval: images/val2017\n"
                                        f"names:\n{table}\n")
    return root


def test_ultralytics_layout_with_data_yaml(tmp_path: Path, caplog):
    root = ultralytics(tmp_path / "mine")
    data = load_instance_data(DataRequest(str(root)))
    assert data.layout == "yolo" and data.classes == list(SHAPE_NAMES)
    assert len(data.train) == 6 and len(data.val) == 6 and data.test is None
    assert "found: YOLO (Ultralytics) layout" in caplog.text and "4 classes from data.yaml" in caplog.text
    objs = data.train[0].objects.window((0, 0, SIZE, SIZE))
    scene = make_scene(0, 0, SIZE, max_distractors=3)
    assert len(objs["masks"]) == len(scene.instances) and sorted(objs["labels"]) == sorted(scene.instance_classes)
    _, target = InstanceDataset(data.train, 3, masks=True)[5]  # no label file: legal, and a target with masks
    assert target["masks"].shape == (0, SIZE, SIZE) and len(target["boxes"]) == 0
    # the yaml itself as --data
    assert len(load_instance_data(DataRequest(str(root / "data.yaml"))).val) == 6


def test_ultralytics_without_names_takes_the_80_coco_classes(tmp_path: Path, caplog):
    data = load_instance_data(DataRequest(str(ultralytics(tmp_path, names=False))))
    assert data.classes == list(COCO80) and len(data.train) == 6
    assert "80 COCO names" in caplog.text


def test_label_path_follows_ultralytics_rule():
    assert label_path(Path("/d/images/train2017/a.jpg")) == Path("/d/labels/train2017/a.txt")
    assert label_path(Path("/images/x/images/a.png")) == Path("/images/x/labels/a.txt")


def test_roboflow_export_with_valid_and_test(tmp_path: Path, caplog):
    for split, seed in (("train", 0), ("valid", 1), ("test", 2)):
        write_yolo_split(tmp_path / split / "images", tmp_path / split / "labels", 4, seed)
    (tmp_path / "data.yaml").write_text("train: ../train/images\nval: ../valid/images\ntest: ../test/images\n"
                                        f"nc: 4\nnames: {list(SHAPE_NAMES)}\n")
    data = load_instance_data(DataRequest(str(tmp_path)))
    assert (len(data.train), len(data.val), len(data.test)) == (4, 4, 4)
    assert "scored once at the end" in caplog.text


def test_yaml_with_val_equal_to_train_is_warned(tmp_path: Path, caplog):
    write_yolo_split(tmp_path / "images" / "train2017", tmp_path / "labels" / "train2017", 4, 0)
    (tmp_path / "coco128.yaml").write_text("train: images/train2017\nval: images/train2017\nnames: [a, b, c, d]\n")
    load_instance_data(DataRequest(str(tmp_path)))
    assert "val is the same as train" in caplog.text


def test_coco_as_published(tmp_path: Path):
    for split, seed in (("train2017", 0), ("val2017", 1)):
        images, anns = [], []
        for i in range(3):
            scene = make_scene(i, seed, SIZE, max_distractors=3)
            name = f"{i:012d}.jpg"
            write_png(tmp_path / split / name, scene.image)
            images.append({"id": i + 1, "file_name": name, "height": SIZE, "width": SIZE})
            for m, c in zip(scene.instances, scene.instance_classes):
                ys, xs = np.nonzero(m)
                anns.append({"id": len(anns) + 1, "image_id": i + 1, "category_id": int(c) + 1, "iscrowd": 0,
                             "segmentation": mask_to_polygons(m),
                             "bbox": [int(xs.min()), int(ys.min()), int(np.ptp(xs)) + 1, int(np.ptp(ys)) + 1]})
        cats = [{"id": k + 1, "name": n} for k, n in enumerate(SHAPE_NAMES)]
        (tmp_path / "annotations").mkdir(exist_ok=True)
        (tmp_path / "annotations" / f"instances_{split}.json").write_text(
            json.dumps({"images": images, "annotations": anns, "categories": cats}))
    (tmp_path / "annotations" / "captions_train2017.json").write_text("{}")  # other COCO files are ignored
    data = load_instance_data(DataRequest(str(tmp_path)))
    assert data.layout == "coco" and len(data.train) == 3 and len(data.val) == 3
    assert data.val[0].image == tmp_path / "val2017" / "000000000000.jpg"


def test_split_folders_keep_test_for_testing(tmp_path: Path, caplog):
    for split, seed in (("train", 0), ("test", 1)):
        write_yolo_split(tmp_path / split / "images", tmp_path / split / "labels", 10, seed)
    (tmp_path / "classes.txt").write_text("\n".join(SHAPE_NAMES))
    data = load_instance_data(DataRequest(str(tmp_path), val_split=0.2))
    assert (len(data.train), len(data.val), len(data.test)) == (8, 2, 10)
    assert all(i.image.parent.parent.name == "train" for i in data.val)  # validation never comes from test/
    assert "held out of train" in caplog.text


def test_no_layout_says_what_it_saw(tmp_path: Path):
    (tmp_path / "pictures").mkdir()
    (tmp_path / "notes.csv").write_text("x")
    with pytest.raises(CnnkitError, match=r"saw pictures/, \.csv"):
        load_instance_data(DataRequest(str(tmp_path)))


def test_convert_refuses_an_empty_data_set_and_keeps_publisher_splits(tmp_path: Path):
    root = ultralytics(tmp_path / "mine", n=3)
    written = convert(str(root), "coco", str(tmp_path / "out"))
    assert {p.parent.name for p in written} == {"train", "val"}
    assert len(json.loads(written[0].read_text())["images"]) == 3
    (tmp_path / "empty" / "images").mkdir(parents=True)
    (tmp_path / "empty" / "masks").mkdir()
    with pytest.raises(CnnkitError, match="no images"):
        convert(str(tmp_path / "empty"), "coco", str(tmp_path / "out2"))
    assert not (tmp_path / "out2").exists()


# regressions found by trying the layouts as a user would
def test_yolo_folders_without_yaml_by_a_relative_path(tmp_path: Path, monkeypatch):
    ultralytics(tmp_path / "mine", names=False, n=3)
    monkeypatch.chdir(tmp_path)
    assert len(load_instance_data(DataRequest("mine")).train) == 3
    assert len(load_instance_data(DataRequest("./mine/")).val) == 3


@pytest.mark.parametrize("text, match", [("path: x\nval: images/val2017\n", "needs 'train'"),
                                         ("names: [a, b\ntrain: : :\n", "not a readable YAML file")])
def test_a_faulty_data_yaml_is_said(tmp_path: Path, text: str, match: str):
    root = ultralytics(tmp_path / "mine", names=False, n=2)
    (root / "data.yaml").write_text(text)
    with pytest.raises(CnnkitError, match=match):
        load_instance_data(DataRequest(str(root)))


def test_box_lines_among_polygons_become_box_masks(tmp_path: Path, caplog):
    root = ultralytics(tmp_path / "mine", n=3)
    (root / "labels" / "train2017" / "0_001.txt").write_text("1 0.5 0.5 0.4 0.4\n")  # a box, no polygon
    data = load_instance_data(DataRequest(str(root)))
    for i in range(3):
        _, target = InstanceDataset(data.train, 3, masks=True)[i]
        assert len(target["masks"]) == len(target["labels"]) == len(target["boxes"])
    _, target = InstanceDataset(data.train, 3, masks=True)[1]
    assert target["masks"][0].sum() == pytest.approx(0.4 * SIZE * 0.4 * SIZE, rel=0.1)  # the box is the mask


def test_convert_to_masks_keeps_images_without_objects_and_leaves_nothing_half_written(tmp_path: Path):
    root = ultralytics(tmp_path / "mine", n=3)  # the last image of each split has no label file
    convert(str(root), "masks", str(tmp_path / "maps"))
    assert len(list((tmp_path / "maps" / "train" / "masks").glob("*.png"))) == 3
    boxes = ultralytics(tmp_path / "boxes", n=2)
    for label in (boxes / "labels").rglob("*.txt"):
        label.write_text("0 0.5 0.5 0.2 0.2\n")
    with pytest.raises(CnnkitError, match=r"0_000.jpg: its objects have boxes but no masks"):
        convert(str(boxes), "masks", str(tmp_path / "box_maps"))
    assert not (tmp_path / "box_maps").exists() and not list(tmp_path.glob(".box_maps*"))


def test_coco_missing_image_is_named_where_it_belongs(tmp_path: Path):
    test_coco_as_published(tmp_path)
    (tmp_path / "train2017" / "000000000001.jpg").unlink()
    with pytest.raises(CnnkitError, match=r"train2017/000000000001.jpg: image listed .* --skip-bad"):
        load_instance_data(DataRequest(str(tmp_path)))


def keyed_yaml(root: Path, names: str) -> Path:
    """Ultralytics' layout whose data.yaml keys its names from 1; the labels use ids 1 (cat) and 2 (dog):
    per image two cats on the left and two dogs on the right (boxes)."""
    for split in ("train", "val"):
        for i in range(2):
            write_png(root / "images" / split / f"{i}.png", np.zeros((SIZE, SIZE, 3), np.uint8))
            (root / "labels" / split).mkdir(parents=True, exist_ok=True)
            (root / "labels" / split / f"{i}.txt").write_text(
                "1 0.2 0.2 0.2 0.2\n1 0.2 0.7 0.2 0.2\n2 0.7 0.2 0.2 0.2\n2 0.7 0.7 0.2 0.2\n")
    (root / "data.yaml").write_text(f"train: images/train\nval: images/val\nnames: {names}\n")
    return root


@pytest.mark.parametrize("names", ["{1: cat, 2: dog, 3: bird}", "{1: cat, 2: dog}"])
def test_yaml_names_keyed_from_1_keep_labels_and_names_paired(tmp_path: Path, names: str, caplog):
    """Regression: keys 1, 2, 3 were taken as indices 0, 1, 2: every cat trained as a dog (or, with two
    names, a refusal of the dogs' lines)."""
    data = load_instance_data(DataRequest(str(keyed_yaml(tmp_path, names))))
    assert data.classes[:2] == ["cat", "dog"]
    objs = data.train[0].objects.window((0, 0, SIZE, SIZE))
    left = objs["boxes"][:, 0] < SIZE / 2
    assert [data.classes[c] for c in objs["labels"][left]] == ["cat", "cat"]
    assert [data.classes[c] for c in objs["labels"][~left]] == ["dog", "dog"]
    assert "label ids 1, 2" in caplog.text and "are its names' keys" in caplog.text
    # a checkpoint's classes (the same yaml's, in key order) read the labels alike
    again = load_instance_data(DataRequest(str(tmp_path), split="val", channels=3), classes=data.classes)
    assert again.val[0].objects.labels.tolist() == objs["labels"].tolist()


def test_yaml_names_with_unusable_keys_or_unknown_ids_are_refused(tmp_path: Path):
    root = keyed_yaml(tmp_path, "{a: cat, b: dog}")
    with pytest.raises(CnnkitError, match=r"data.yaml: the keys of 'names' must be the class ids"):
        load_instance_data(DataRequest(str(root)))
    (root / "data.yaml").write_text("train: images/train\nval: images/val\nnames: {2: dog, 3: bird}\n")
    with pytest.raises(CnnkitError, match=r"0.txt:1: class 1 is not one of the ids the yaml's names give \(2, 3\)"):
        load_instance_data(DataRequest(str(root)))

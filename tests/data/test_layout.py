"""Layouts as objects (``cnnkit.data.layout``): each task's layouts detect their data by names alone, the
most specific match chooses the task, and ``cnnkit data check`` says which matched, which it chose and how
to choose another."""

import json
from pathlib import Path

import numpy as np
import pytest

from cnnkit.cli.main import main
from cnnkit.data.layout import FOLDERS, MARKER, Found, Layout, choose, matches
from cnnkit.tasks import get_layouts, task_names
from cnnkit.tasks.registry import guess_task
from tests.conftest import write_png
from tests.data.test_instance_data import coco_file, write_maps
from tests.data.test_instance_layouts import ultralytics, write_yolo_split
from tests.data.test_segment_layouts import cityscapes, write_split
from tests.data.test_splits import cifar_like


def dsb2018_published(root: Path, n: int = 6) -> Path:
    """DSB2018 as its download comes: ``<id>/images/<id>.png`` and ``<id>/masks/*.png``, one PNG per nucleus."""
    rng = np.random.default_rng(0)
    for i in range(n):
        folder = root / f"{i:04x}cafe"
        write_png(folder / "images" / f"{folder.name}.png", rng.integers(0, 255, (32, 32, 3), dtype=np.uint8))
        for k in range(2):
            nucleus = np.zeros((32, 32), np.uint8)
            nucleus[4 + 12 * k: 12 + 12 * k, 5:15] = 255
            write_png(folder / "masks" / f"{k:02d}.png", nucleus)
    return root


def test_dsb2018_published_layout_is_found_as_instance(tmp_path, capsys):
    """Regression: `data check` said "no segmentation layout found" and exited 2 on this layout, which
    `train instance --data` reads."""
    root = dsb2018_published(tmp_path / "stage1")
    assert guess_task(str(root))[0] == "instance"
    assert main(["data", "check", str(root)]) == 0
    out = capsys.readouterr().out
    assert "task: instance (<id>/images/ and <id>/masks/ (6 folders; one PNG per object" in out
    assert "train: 5 images, 10 objects" in out and "problems: 0 (none)" in out
    assert f"train with: cnnkit train instance --data {root} --model maskrcnn_resnet18" in out


def _voc(root: Path) -> Path:
    for i in range(2):
        write_png(root / "JPEGImages" / f"{i}.png", np.zeros((8, 8, 3), np.uint8))
        write_png(root / "SegmentationClass" / f"{i}.png", np.zeros((8, 8), np.uint8))
    return root


def _idx(root: Path) -> Path:
    root.mkdir(parents=True)
    (root / "train-images-idx3-ubyte.gz").write_bytes(b"")
    return root


def _csv(root: Path) -> Path:
    root.mkdir(parents=True)
    (root / "labels.csv").write_text("path,label\na.png,cat\n")
    return root / "labels.csv"


def _segnet(root: Path) -> Path:
    for split, seed in (("train", 1), ("val", 2)):
        write_split(root / split, root / f"{split}annot", 2, seed)
    return root


def _ade20k(root: Path) -> Path:
    for split, seed in (("training", 1), ("validation", 2)):
        write_split(root / "images" / split, root / "annotations" / split, 2, seed)
    return root


def _pairs(root: Path) -> Path:
    write_split(root / "images", root / "masks", 3, 1)
    return root


def _split_pairs(root: Path) -> Path:
    """CamVid as in ../shared/datasets: train/images + train/masks, val/images + val/masks."""
    for split, seed in (("train", 1), ("val", 2)):
        write_split(root / split / "images", root / split / "masks", 2, seed)
    return root


def _coco_official(root: Path) -> Path:
    (root / "annotations").mkdir(parents=True)
    (root / "annotations" / "instances_train2017.json").write_text("{}")
    return root


def _yolo_folders(root: Path) -> Path:
    write_yolo_split(root / "images" / "train", root / "labels" / "train", 2, 0)
    return root


def _object_folders(root: Path) -> Path:
    write_png(root / "images" / "x.png", np.zeros((8, 8, 3), np.uint8))
    write_png(root / "masks" / "x" / "0.png", np.zeros((8, 8), np.uint8))
    return root


def _maps_with_classes(root: Path) -> Path:
    write_maps(root, n=2, classes=True)
    return root


# each built-in layout, the task it is guessed as and the layout that matched (as before layouts were objects)
BUILT_IN = [
    ("shapes", lambda root: Path("shapes:32"), "classify", "shapes"),
    ("class folders", lambda root: cifar_like(root), "classify", "ImageFolder"),
    ("IDX", _idx, "classify", "IDX"),
    ("CSV", _csv, "classify", "CSV"),
    ("VOC", _voc, "segment", "voc"),
    ("Cityscapes", lambda root: cityscapes(root) is not None and root, "segment", "cityscapes"),
    ("SegNet", _segnet, "segment", "segnet"),
    ("ADE20K", _ade20k, "segment", "folders"),
    ("images and masks", _pairs, "segment", "folders"),
    ("split folders of images and masks", _split_pairs, "segment", "folders"),
    ("data.yaml", lambda root: ultralytics(root, n=2), "instance", "YOLO data.yaml"),
    ("a yaml file", lambda root: ultralytics(root, n=2) / "data.yaml", "instance", "YOLO data.yaml"),
    ("COCO file", lambda root: coco_file(root, []), "instance", "COCO"),
    ("COCO as published", _coco_official, "instance", "COCO"),
    ("YOLO folders", _yolo_folders, "instance", "YOLO"),
    ("per-object mask folders", _object_folders, "instance", "object masks"),
    ("instance maps with classes", _maps_with_classes, "instance", "object masks"),
    ("DSB2018 as published", lambda root: dsb2018_published(root, 2), "instance", "DSB2018"),
]


@pytest.mark.parametrize(("make", "task", "layout"), [case[1:] for case in BUILT_IN], ids=[c[0] for c in BUILT_IN])
def test_each_built_in_layout_is_detected_as_before(tmp_path, make, task, layout):
    source = make(tmp_path / "data")
    found = matches({name: get_layouts(name) for name in task_names()}, Path(source))
    assert (found[0].task, found[0].layout.name) == (task, layout)
    assert guess_task(str(source)) == (task, found[0].why)


def test_a_folder_two_tasks_read_says_which_was_chosen_and_how_to_choose_the_other(tmp_path, capsys):
    root = _pairs(tmp_path / "pairs")
    assert main(["data", "check", str(root)]) == 0
    out = capsys.readouterr().out
    assert "task: segment (images/ and masks/ (masks beside the images))" in out
    also = next(line for line in out.splitlines() if line.startswith("also matched: "))
    assert also.startswith("also matched: instance, detect") and "chose segment" in also
    assert "pass --task instance" in also
    assert "  instance: instance maps layout (images/ and masks/, each mask value one object" in out
    assert main(["data", "check", str(root), "--task", "instance"]) == 0  # the other reading, as said
    out = capsys.readouterr().out
    assert "task: instance (given)" in out and "also matched" not in out and "annotations: masks" in out


def test_the_most_specific_layout_wins_then_the_task_registered_first(tmp_path):
    def marker(root):
        return "m" if root.name == "d" else None

    def folder(root):
        return "f"

    loose, exact = Layout("loose", "", folder, "x:y", FOLDERS), Layout("exact", "", marker, "x:y", MARKER)
    found = matches({"a": (loose,), "b": (loose, exact), "c": (exact,)}, tmp_path / "d")
    assert [(m.task, m.layout.name) for m in found] == [("b", "exact"), ("c", "exact"), ("a", "loose")]
    assert choose((exact, loose), tmp_path / "other") == (loose, "f")  # training: the first that detects
    assert choose((exact,), tmp_path / "other") == (exact, None)  # none: the last, whose reader says what it expected


def test_the_found_line_is_built_from_the_object():
    found = Found("COCO", Path("/d"), "a .json file", {"train": [1, 2], "val": [3]}, classes=["cell", "dust"],
                  unit="images")
    assert found.line() == "found: COCO layout in /d (a .json file), 3 images, 2 classes (cell, dust)"
    assert Found("CSV", Path("/d.csv"), "", {"all": []}, form="found: CSV of path,label in {root}").line() == \
        "found: CSV of path,label in /d.csv"


def test_every_task_declares_layouts_from_its_own_folder():
    for name in task_names():
        layouts = get_layouts(name)
        assert layouts and all(isinstance(layout, Layout) for layout in layouts), name
    assert json.dumps([layout.name for layout in get_layouts("detect")])  # detect declares its own list


def test_boxes_only_are_checked_as_the_task_that_reads_boxes(tmp_path, capsys):
    """The annotations decide between two tasks of one layout: boxes only -> the task without masks."""
    for i in range(4):
        write_png(tmp_path / "images" / f"{i}.png", np.zeros((32, 32, 3), np.uint8))
        (tmp_path / "labels").mkdir(exist_ok=True)
        (tmp_path / "labels" / f"{i}.txt").write_text("0 0.5 0.5 0.25 0.25\n")
    (tmp_path / "classes.txt").write_text("cell\n")
    assert main(["data", "check", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "task: detect (labels/ beside the images (YOLO .txt))" in out and "annotations: boxes only" in out
    assert "also matched: instance;" in out and "  detect:" not in out and "segment" not in out
    assert f"train with: cnnkit train detect --data {tmp_path} --model fasterrcnn_resnet18" in out


def test_images_beside_16_bit_masks_are_guessed_as_instance_maps(tmp_path, capsys):
    """Regression: `data check` on DSB2018's stage-1 copy (images/ + masks/ of 16-bit instance maps, up to 375
    nuclei an image) guessed segment and failed on "mask value 375"; 8-bit masks beside images stay segment's."""
    rng = np.random.default_rng(0)
    for i in range(4):
        write_png(tmp_path / "images" / f"{i}.png", rng.integers(0, 255, (32, 32, 3), dtype=np.uint8))
        ids = np.zeros((32, 32), np.uint16)
        ids[2:10, 2:10], ids[15:25, 15:25] = 300, 301  # ids past a byte: one per object
        write_png(tmp_path / "masks" / f"{i}.png", ids)
    assert guess_task(str(tmp_path))[0] == "instance"
    assert main(["data", "check", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "task: instance (images/ and 16-bit masks/" in out and "segment: folders layout" in out
    assert "objects" in out and "problems: 0 (none)" in out
    assert guess_task(str(_pairs(tmp_path / "eight")))[0] == "segment"


def test_catch_all_readers_are_not_listed_beside_a_more_specific_match(tmp_path, capsys):
    """Every folder of images is pretraining data and many are class folders: naming them beside a segment
    data set was noise."""
    root = _pairs(tmp_path / "pairs")
    assert main(["data", "check", str(root)]) == 0
    out = capsys.readouterr().out
    assert "  classify:" not in out and "  pretrain:" not in out


def test_a_task_given_is_the_task_checked_and_the_command_keeps_the_seed(tmp_path, capsys):
    """Regression: `data check DSB --task detect` said "task: instance (given)" and suggested `train instance`;
    `--seed 5` checked a split that the suggested command (without the seed) would not hold out."""
    root = dsb2018_published(tmp_path / "stage1")
    assert main(["data", "check", str(root), "--task", "detect", "--seed", "5", "--val-split", "0.3"]) == 0
    out = capsys.readouterr().out
    assert "task: detect (given)" in out
    assert out.rstrip().splitlines()[-1].startswith(f"train with: cnnkit train detect --data {root}")
    assert "--val-split 0.3 --seed 5" in out.rstrip().splitlines()[-1]


def test_yolo_labels_are_not_offered_as_segmentation_masks(tmp_path, capsys):
    """Regression: `data check` of YOLO folders said segment also matched ("images/ and labels/ (masks beside
    the images)"), and `--task segment` then failed on every image: .txt files are not masks."""
    root = _yolo_folders(tmp_path / "yolo")
    assert main(["data", "check", str(root)]) == 0
    assert "segment" not in capsys.readouterr().out

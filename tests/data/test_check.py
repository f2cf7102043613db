"""`cnnkit data check`: the layout, splits, classes and problems of a data set, and exit 2 when
training would fail."""

import pytest

from cnnkit.cli.main import main
from cnnkit.data.check import check_data, guess_task
from tests.data.test_instance_layouts import ultralytics
from tests.data.test_segment_layouts import write_split
from tests.data.test_splits import cifar_like


def test_check_yolo_layout(tmp_path, capsys):
    root = ultralytics(tmp_path / "mine")
    assert main(["data", "check", str(root)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("found: YOLO (Ultralytics) layout")
    assert "task: instance" in out and "train: 6 images" in out and "1 without objects" in out
    assert f"train with: cnnkit train instance --data {root}" in out and "problems: 0 (none)" in out


def test_check_classify_with_test_folder(tmp_path):
    lines = check_data(str(cifar_like(tmp_path / "c")), val_split=0.25)
    text = "\n".join(lines)
    assert "task: classify" in text and "test: 12 images" in text and "val: 10 images" in text
    assert "sizes 16x16" in text


def test_check_segnet_counts_classes(tmp_path):
    for split, seed in (("train", 1), ("val", 2)):
        write_split(tmp_path / split, tmp_path / f"{split}annot", 4, seed)
    assert guess_task(str(tmp_path))[0] == "segment"
    text = "\n".join(check_data(str(tmp_path)))
    assert "found: segnet layout" in text and "class_0" in text and "mask values in train: [0, 1, 2]" in text


def test_check_problems_exit_2_with_the_file_named(tmp_path, capsys):
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    (tmp_path / "images" / "a.png").write_bytes(b"")
    assert main(["data", "check", str(tmp_path), "--task", "segment"]) == 2
    err = capsys.readouterr().err
    assert "a.png" in err and err.count("\n") == 1


@pytest.mark.parametrize("argv", [["data", "convert", "x"], ["data", "check", "/no/such/folder"]])
def test_data_command_errors(argv, capsys):
    assert main(argv) == 2
    assert capsys.readouterr().err.startswith("error: ")


def test_check_counts_near_duplicates_across_splits(tmp_path):
    from PIL import Image

    from tests.conftest import write_image_folder

    root = write_image_folder(tmp_path / "d", {"train": (12, 0), "val": (8, 1)}, 32)
    copied = sorted((root / "train").rglob("*.png"))[:3]
    for i, p in enumerate(copied):  # the same pictures, resized and re-encoded as JPEG, in val
        Image.open(p).resize((48, 48)).convert("RGB").save(root / "val" / p.parent.name / f"copy{i}.jpg", quality=80)
    text = "\n".join(check_data(str(root)))
    assert "near-duplicates: 3 of 11 val images look like a training image" in text


@pytest.mark.parametrize("to", ["coco", "masks", "yolo"])
def test_converted_output_is_read_as_the_format_written(tmp_path, to):
    from cnnkit.data.convert import convert

    convert(str(ultralytics(tmp_path / "mine", n=2)), to, str(tmp_path / "out"))
    assert guess_task(str(tmp_path / "out"))[0] == "instance"


def test_check_lists_every_kind_of_problem_and_suggests_the_flags_it_was_given(tmp_path, capsys):
    import numpy as np

    from tests.conftest import write_png

    for i in range(4):
        write_png(tmp_path / "seg" / "images" / f"{i}.png", np.zeros((8, 8, 3), np.uint8))
    for i in range(1, 5):
        write_png(tmp_path / "seg" / "masks" / f"{i}.png", np.ones((4, 4) if i == 2 else (8, 8), np.uint8))
    assert main(["data", "check", str(tmp_path / "seg")]) == 2
    out = capsys.readouterr().out
    assert "0.png: image has no mask" in out and "2.png: mask is 4x4" in out  # pairing and sizes, not one kind
    root = cifar_like(tmp_path / "c")
    text = "\n".join(check_data(str(root), val_split=0.25, group=r"^(\d+)"))
    assert text.endswith("--val-split 0.25 --val-group '^(\\d+)'")


def test_check_counts_classes_of_a_yaml_keyed_from_1(tmp_path, capsys):
    """Regression: names {1: cat, 2: dog, 3: bird} with labels 1 and 2 were reported as cat 0, dog 4, bird 4."""
    from tests.data.test_instance_layouts import keyed_yaml

    root = keyed_yaml(tmp_path / "k", "{1: cat, 2: dog, 3: bird}")
    assert main(["data", "check", str(root)]) == 0
    out = capsys.readouterr().out
    assert "per class cat 4, dog 4, bird 0" in out and "label ids 1, 2, 3 are its names' keys" in out


def test_check_counts_crowd_regions_apart(tmp_path):
    from tests.data.test_instance_data import crowd_coco

    text = "\n".join(check_data(str(crowd_coco(tmp_path, images=4)), val_split=0.5))
    assert "train: 2 images, 4 objects" in text and "per class cell 2, dust 2; 2 crowd regions" in text

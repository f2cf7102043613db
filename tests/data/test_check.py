"""`cnnkit data check`: the layout, splits, classes and problems of a data set, and exit 2 when
training would fail."""

import pytest

from cnnkit.cli.main import main
from cnnkit.data.check import check_data as check_with
from cnnkit.tasks.registry import check_tasks, guess_task
from tests.data.test_instance_layouts import ultralytics
from tests.data.test_segment_layouts import write_split
from tests.data.test_splits import cifar_like


def check_data(source, **reading):
    """The report of ``cnnkit data check``: every registered task's layouts tried, as the CLI does."""
    return check_with(source, check_tasks(), **reading)


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


def _binary_pairs(root, values_of):
    """images/ + masks/ of 16 px; mask i holds 0 and ``values_of(i)`` in a square."""
    import numpy as np

    from tests.conftest import write_png

    rng = np.random.default_rng(0)
    for i in range(6):
        write_png(root / "images" / f"{i}.png", rng.integers(0, 255, (16, 16, 3), dtype=np.uint8))
        mask = np.zeros((16, 16), np.uint8)
        mask[4:10, 4:10] = values_of(i)
        write_png(root / "masks" / f"{i}.png", mask)
    return root


def test_one_0_255_mask_among_0_1_masks_is_named_and_binary_reads_it(tmp_path, capsys):
    root = _binary_pairs(tmp_path / "seg", lambda i: 255 if i == 3 else 1)
    assert main(["data", "check", str(root)]) == 0
    out = capsys.readouterr().out
    assert "problems: 1" in out and "3.png: values 0 and 255 where the other masks hold 0 and 1" in out
    assert "pass --binary" in out
    assert main(["data", "check", str(root), "--binary"]) == 0  # read as training with --binary reads it
    out = capsys.readouterr().out
    # the suggested model is the task's own default (its spec's defaults["model"]), not a table of data check's
    assert "problems: 0 (none)" in out and out.rstrip().endswith("--model unet_basic --binary")


def test_masks_using_255_to_ignore_borders_are_not_named(tmp_path):
    # 255 beside 1 in one mask: a VOC-style border to ignore, not a binary mask saved the other way
    root = _binary_pairs(tmp_path / "seg", lambda i: (1, 255, 255)[i % 3])
    import numpy as np

    from tests.conftest import write_png

    both = np.zeros((16, 16), np.uint8)
    both[2:6, 2:6], both[6:8, 2:6] = 1, 255
    write_png(root / "masks" / "0.png", both)
    assert "problems: 0 (none)" in "\n".join(check_data(str(root)))


def _truncated_jpeg(path):
    import numpy as np
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.random.default_rng(1).integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(path, quality=90)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])  # the header reads; the body stops halfway


def test_a_truncated_jpeg_is_decoded_and_named(tmp_path, capsys):
    root = cifar_like(tmp_path / "c")
    _truncated_jpeg(next(root.glob("train/*/")) / "cut.jpg")
    assert main(["data", "check", str(root)]) == 2
    captured = capsys.readouterr()
    assert "cut.jpg: corrupt or truncated image" in captured.out and "cut.jpg" in captured.err
    lines = check_data(str(root), skip_bad=True)
    assert any("cut.jpg" in line and line.endswith("; skipped") for line in lines)
    assert not any("pass --skip-bad" in line for line in lines)  # it was given


def test_a_truncated_segmentation_image_is_decoded_and_named(tmp_path, capsys):
    root = _binary_pairs(tmp_path / "seg", lambda i: 1)
    (root / "images" / "2.png").unlink()
    _truncated_jpeg(root / "images" / "2.jpg")
    assert main(["data", "check", str(root)]) == 2
    assert "2.jpg: corrupt or truncated image" in capsys.readouterr().out


def test_every_kind_of_segmentation_problem_is_listed_in_one_run(tmp_path, capsys):
    import numpy as np

    from tests.conftest import write_png

    root = _binary_pairs(tmp_path / "seg", lambda i: 1)
    (root / "classes.csv").write_text("index,name\n0,background\n1,thing\n")
    (root / "images" / "0.png").write_bytes(b"not a png")  # unreadable image
    write_png(root / "masks" / "9.png", np.zeros((16, 16), np.uint8))  # mask without image
    write_png(root / "images" / "8.png", np.zeros((16, 16, 3), np.uint8))  # image without mask
    write_png(root / "masks" / "1.png", np.ones((8, 8), np.uint8))  # size mismatch
    write_png(root / "masks" / "2.png", np.full((16, 16), 7, np.uint8))  # a value outside the classes
    assert main(["data", "check", str(root)]) == 2
    captured = capsys.readouterr()
    for said in ("0.png: not an image", "9.png: mask has no image", "8.png: image has no mask",
                 "1.png: mask is 8x8", "2.png: values [7]"):
        assert said in captured.out
    assert captured.err.startswith("error: 5 problems in") and captured.err.count("\n") == 1


def test_check_takes_the_segment_reading_flags_and_repeats_them(tmp_path, capsys):
    root = _binary_pairs(tmp_path / "seg", lambda i: (1, 2, 5)[i % 3])
    classes = tmp_path / "names.csv"
    classes.write_text("index,name\n0,background\n1,a\n2,b\n")
    assert main(["data", "check", str(root), "--classes-file", str(classes), "--ignore-index", "5"]) == 0
    out = capsys.readouterr().out
    assert "classes (3, from " in out and "ignore index 5" in out and "problems: 0 (none)" in out
    assert out.rstrip().endswith(f"--ignore-index 5 --classes-file {classes}")
    assert main(["data", "check", str(root), "--classes-file", str(classes)]) == 2  # 5 is no class then
    assert "values [5] are not class values" in capsys.readouterr().out
    assert main(["data", "check", str(cifar_like(tmp_path / "c")), "--binary"]) == 2
    assert capsys.readouterr().err.startswith("error: --binary: a flag of segment data")


def test_an_invalid_val_group_is_refused_even_beside_a_val_folder(tmp_path, capsys):
    from tests.conftest import write_image_folder

    root = write_image_folder(tmp_path / "d", {"train": (12, 0), "val": (8, 1)}, 16)
    assert main(["data", "check", str(root), "--val-group", "("]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --val-group '(': not a regular expression") and err.count("\n") == 1


def test_a_truncated_instance_image_is_decoded_and_named(tmp_path, capsys):
    root = ultralytics(tmp_path / "mine")
    image = sorted((root / "images" / "train2017").iterdir())[1]
    _truncated_jpeg(image)  # its header reads; its pixels stop halfway
    assert main(["data", "check", str(root)]) == 2
    assert f"{image}: corrupt or truncated image" in capsys.readouterr().out
    assert main(["data", "check", str(root), "--skip-bad"]) == 0
    assert "train: 5 images" in capsys.readouterr().out


def test_a_shared_hash_alone_is_not_a_near_duplicate(tmp_path):
    """Regression: aligned faces of two people (Extended Yale B) shared difference hashes: 389 of 490 val
    images were called near-duplicates. A match is now confirmed by the thumbnails' grey levels."""
    import numpy as np

    from cnnkit.data.describe import near_duplicates
    from tests.conftest import write_png

    ramp = np.tile(np.linspace(0, 80, 64), (64, 1))
    dark = write_png(tmp_path / "a.png", ramp.astype(np.uint8))
    light = write_png(tmp_path / "b.png", (ramp + 150).astype(np.uint8))  # the same hash: brighter to the right
    copy = write_png(tmp_path / "c.png", (ramp + 3).astype(np.uint8))
    assert near_duplicates([dark], [light]).startswith("near-duplicates: none of 1 val images")
    assert near_duplicates([dark], [copy]).startswith("near-duplicates: 1 of 1 val images")


def test_a_class_named_unlabelled_is_suggested_as_the_ignore_index(tmp_path):
    """Regression: CamVid's classes.csv names class 11 'Unlabelled'; data check suggested training on it."""
    import numpy as np

    from tests.conftest import write_png

    for i in range(6):
        write_png(tmp_path / "images" / f"{i}.png", np.zeros((16, 16, 3), np.uint8))
        write_png(tmp_path / "masks" / f"{i}.png", np.arange(256, dtype=np.uint8).reshape(16, 16) % 3)
    (tmp_path / "classes.csv").write_text("0,sky,0,0,255\n1,road,128,64,128\n2,Unlabelled,0,0,0\n")
    text = "\n".join(check_data(str(tmp_path)))
    assert "class 2 is named 'Unlabelled': pass --ignore-index 2" in text
    assert text.splitlines()[-1].endswith("--ignore-index 2")


def test_a_hold_out_that_takes_every_image_of_a_class_is_a_problem(tmp_path):
    """Regression: `--val-group` holding out whole people (the classes) left 11 of 38 classes without a training
    image, and data check said "problems: 0 (none)"; training then scored top-1 0."""
    import numpy as np

    from tests.conftest import write_png

    for person in ("ann", "bob", "cy", "dee"):
        for i in range(4):
            write_png(tmp_path / person / f"{person}_{i}.png", np.full((8, 8, 3), 40 * i, np.uint8))
    text = "\n".join(check_data(str(tmp_path), group=r"^.*/(\w+)_\d", val_split=0.5))
    assert "have no training images; the model cannot learn them; the hold-out took all their images" in text
    assert "problems: 0" not in text

"""Splits through the CLI: a test/ folder is scored once at the end, and `cnnkit val` scores the
images held out at training by default, not the training images."""

import json

from cnnkit.cli.main import main
from tests.cli.test_cli import TRAIN
from tests.data.test_splits import cifar_like


def test_test_folder_scored_once_and_val_scores_the_held_out_images(tmp_path, capsys):
    root = cifar_like(tmp_path / "cifar", n_train=40, n_test=12)
    assert main([*TRAIN, "--data", str(root), "--imgsz", "16", "--val-split", "0.25", "--project",
                 str(tmp_path / "runs"), "--name", "t"]) == 0
    run = tmp_path / "runs" / "classify" / "t"
    test = json.loads((run / "test" / "metrics.json").read_text())
    assert 0 <= test["top1"] <= 1
    capsys.readouterr()

    assert main(["val", "--weights", str(run / "best.pt"), "--data", str(root), "--out", str(tmp_path / "v")]) == 0
    out = capsys.readouterr().out
    assert "10 images" in out  # 25% of 40 held out: the validation images, not all 40 nor the test folder
    assert main(["val", "--weights", str(run / "best.pt"), "--data", str(root), "--split", "test",
                 "--out", str(tmp_path / "v2")]) == 0
    assert "12 images" in capsys.readouterr().out
    assert main(["val", "--weights", str(run / "best.pt"), "--data", str(root), "--split", "all",
                 "--out", str(tmp_path / "v3")]) == 0
    assert "52 images" in capsys.readouterr().out
    moved = root.rename(tmp_path / "renamed")  # the same files elsewhere: still the held-out images
    assert main(["val", "--weights", str(run / "best.pt"), "--data", str(moved), "--out", str(tmp_path / "v4")]) == 0
    assert "10 images" in capsys.readouterr().out


def test_val_on_an_edited_copy_scores_only_the_held_out_images(tmp_path, capsys):
    """A copy with one image added and one removed was 'not the data set this model trained on': all 60 images
    were scored, 48 of which trained (top-1 1.0), with no word."""
    import shutil

    from tests.conftest import write_image_folder

    root = write_image_folder(tmp_path / "flat", {"": (60, 0)}, 16)
    assert main([*TRAIN, "--data", str(root), "--imgsz", "16", "--val-split", "0.2", "--project",
                 str(tmp_path / "runs"), "--name", "t"]) == 0
    run = tmp_path / "runs" / "classify" / "t"
    copy = tmp_path / "copy"
    shutil.copytree(root, copy)
    files = sorted(copy.rglob("*.png"))
    files[0].unlink()
    shutil.copy(files[1], files[1].with_name("added.png"))
    capsys.readouterr()
    assert main(["val", "--weights", str(run / "best.pt"), "--data", str(copy), "--out", str(tmp_path / "v")]) == 0
    scored = json.loads((tmp_path / "v" / "metrics.json").read_text())
    out = capsys.readouterr()
    assert "11 images" in out.out or "12 images" in out.out, out.out  # the 12 held out, less one if it was removed
    assert scored["top1"] >= 0

"""Regressions from a new user's trial of pretraining, fine-tuning and embeddings."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from PIL import Image

from cnnkit.cli.main import main
from cnnkit.data.unlabelled import find_unlabelled
from tests.tasks.pretrain.conftest import TINY


def one_line_error(capsys, args: list[str]) -> str:
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    return err


def test_a_missing_pretrained_file_is_said_so_for_any_model(tmp_path, shapes_folder, capsys):
    """fastnet takes only cnnkit checkpoints; a missing file was reported as 'takes no pretrained weights'."""
    err = one_line_error(capsys, ["train", "classify", "--data", str(shapes_folder), *TINY, "--project",
                                  str(tmp_path), "--pretrained", str(tmp_path / "nonexist.pt")])
    assert "nonexist.pt: file not found" in err
    (tmp_path / "notes.pt").write_text("not weights")
    err = one_line_error(capsys, ["train", "classify", "--data", str(shapes_folder), *TINY, "--project",
                                  str(tmp_path), "--pretrained", str(tmp_path / "notes.pt")])
    assert "not a cnnkit checkpoint" in err and "best.pt" in err


def test_a_missing_val_folder_names_val(tmp_path, capsys):
    err = one_line_error(capsys, ["train", "pretrain", "--data", "shapes:20", "--val", str(tmp_path / "nope"), *TINY,
                                  "--project", str(tmp_path)])
    assert err.startswith("error: --val") and "--data" not in err


@pytest.mark.parametrize("flags, words", [
    (["--clusters", "99"], "more clusters than the"),
    (["--query", "nonexist.png"], "nonexist.png"),
    (["--map", "umap"], "umap-learn"),
])
def test_embed_refuses_before_any_work(tmp_path, shapes_folder, pretrained, capsys, flags, words):
    """Bad requests were refused only after the whole collection was embedded and its files written."""
    pytest.importorskip("sklearn")
    if flags[1] == "umap":
        try:
            import umap  # noqa: F401
            pytest.skip("umap-learn is installed")
        except ImportError:
            pass
    out = tmp_path / "emb"
    err = one_line_error(capsys, ["embed", "--weights", str(pretrained / "best.pt"), str(shapes_folder / "val"),
                                  "--out", str(out), *flags])
    assert words in err and not out.exists()


def test_embed_skips_mask_folders_as_pretraining_does(tmp_path, pretrained, capsys):
    photos = tmp_path / "photos"
    (photos / "masks").mkdir(parents=True)
    for i in range(4):
        Image.new("RGB", (32, 32), (60 * i, 0, 0)).save(photos / f"{i}.png")
    Image.new("L", (32, 32)).save(photos / "masks" / "0.png")
    out = tmp_path / "runs_emb"
    assert main(["embed", "--weights", str(pretrained / "best.pt"), str(photos), "--out", str(out)]) == 0
    paths = (out / "paths.txt").read_text().split()
    assert len(paths) == 4 and not any("masks" in p for p in paths)
    assert np.load(out / "embeddings.npy").shape[0] == 4


def test_pretraining_leaves_the_test_split_out(tmp_path, caplog):
    for split, n in (("train", 5), ("val", 2), ("test", 3)):
        (tmp_path / split / "cat").mkdir(parents=True)
        for i in range(n):
            Image.new("L", (8, 8)).save(tmp_path / split / "cat" / f"{i}.png")
    with caplog.at_level(logging.INFO, logger="cnnkit"):
        found = find_unlabelled(str(tmp_path))
    assert len(found) == 7 and not any("test" in p.parts for p in found.items)
    assert "the 3 images of its test split are left out" in caplog.text


def test_images_beside_class_folders_are_warned_of(tmp_path, caplog):
    from cnnkit.data.classify import scan_image_folder

    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        Image.new("L", (8, 8)).save(tmp_path / name / "0.png")
    Image.new("L", (8, 8)).save(tmp_path / "loose.png")
    (tmp_path / "masks").mkdir()
    Image.new("L", (8, 8)).save(tmp_path / "masks" / "0.png")
    with caplog.at_level(logging.WARNING, logger="cnnkit"):
        paths, _ = scan_image_folder(tmp_path, skip_bad=False)
    assert len(paths) == 3
    assert "1 images beside the class folders" in caplog.text and "'masks' is read as a class" in caplog.text


def test_a_pretrain_checkpoint_is_not_exported_with_a_hint(tmp_path, pretrained, capsys):
    err = one_line_error(capsys, ["export", "--weights", str(pretrained / "best.pt"), "--out",
                                  str(tmp_path / "x.onnx")])
    assert "best.pt: a pretrain model has no export graph" in err and "cnnkit embed" in err


def test_val_set_for_knn_prints_no_split_line(tmp_path, caplog, capsys):
    """`train pretrain --val` printed 'scoring val (8 images)', a line about evaluating a model."""
    with caplog.at_level(logging.INFO, logger="cnnkit"):
        assert main(["train", "pretrain", "--data", "shapes:32", "--val", "shapes:32", "--model", "fastnet_tiny",
                     "--imgsz", "16", "--epochs", "1", "--project", str(tmp_path)]) == 0
    assert "scoring" not in caplog.text
    assert "labels of 8 images of shapes:32 for k-NN only" in capsys.readouterr().out

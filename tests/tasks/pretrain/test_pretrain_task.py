"""Pretraining end to end: train without labels, monitor, fine-tune from it, embed a collection."""

from __future__ import annotations

import csv
import logging

import numpy as np
import pytest
import torch
from PIL import Image

import cnnkit
from cnnkit.cli.main import main
from cnnkit.data.unlabelled import find_unlabelled
from tests.tasks.pretrain.conftest import TINY


def test_pretrain_monitors_without_labels_and_with_knn(pretrained):
    with (pretrained / "metrics.csv").open() as f:
        row = list(csv.DictReader(f))[-1]
    assert {"train_loss", "val_loss", "spread", "knn_top1"} <= set(row)
    assert 0.0 <= float(row["knn_top1"]) <= 1.0 and float(row["spread"]) > 0
    assert "method: simclr" in (pretrained / "config.yaml").read_text()


def test_finetune_starts_from_the_pretrained_encoder(tmp_path, shapes_folder, pretrained, caplog):
    with caplog.at_level(logging.INFO, logger="cnnkit"):
        assert main(["train", "classify", "--data", str(shapes_folder), *TINY, "--project", str(tmp_path / "ft"),
                     "--pretrained", str(pretrained / "best.pt")]) == 0
    assert "loaded the fastnet encoder" in caplog.text and "starts at random" in caplog.text


def test_freeze_epochs_keeps_the_pretrained_encoder_fixed_first(tmp_path, shapes_folder, pretrained):
    from cnnkit.api import train_with
    from cnnkit.config import make_config
    from cnnkit.models.trunk import trunk_of

    def weights(path) -> dict:  # the encoder's learned tensors (BatchNorm statistics move in any training)
        state = trunk_of(cnnkit.load(path).module.net).module.state_dict()
        return {k: v for k, v in state.items() if "running" not in k and "num_batches" not in k}

    source, same = weights(pretrained / "best.pt"), []
    cfg = make_config({"task": "classify", "data": str(shapes_folder), "model": "fastnet_tiny", "epochs": 2,
                       "batch": 16, "imgsz": 32, "save_period": 0, "pretrained": str(pretrained / "best.pt"),
                       "freeze_epochs": 1, "project": str(tmp_path), "verbose": False})
    run = train_with(cfg, on_epoch_end=lambda epoch, row: same.append(all(
        torch.equal(v, source[k]) for k, v in weights(tmp_path / "classify" / "exp" / "last.pt").items())))
    assert run.run_dir == tmp_path / "classify" / "exp"
    assert same == [True, False]  # fixed through epoch 1, trained in epoch 2


def test_freeze_epochs_needs_a_pretrained_encoder(tmp_path, shapes_folder, capsys):
    assert main(["train", "classify", "--data", str(shapes_folder), *TINY, "--project", str(tmp_path),
                 "--freeze-epochs", "1"]) == 2
    assert "no pretrained encoder to keep fixed" in capsys.readouterr().err


def test_embed_api_and_cli(tmp_path, shapes_folder, pretrained, capsys):
    model = cnnkit.load(pretrained / "best.pt")
    images = sorted((shapes_folder / "val").rglob("*.png"))
    vectors = model.embed([str(p) for p in images[:5]])
    assert vectors.shape == (5, 96) and vectors.dtype == np.float32
    assert np.allclose(model.embed(str(images[0])), vectors[:1], atol=1e-5)  # one image or a list alike
    out = tmp_path / "emb"
    assert main(["embed", "--weights", str(pretrained / "best.pt"), str(shapes_folder / "val"), "--out", str(out),
                 "--query", str(images[0]), "--k", "3", "--clusters", "2", "--cluster-links", "--duplicates", "0.999",
                 "--map", "tsne"]) == 0
    assert np.load(out / "embeddings.npy").shape == (len(images), 96)
    with (out / "neighbours.csv").open() as f:
        found = list(csv.DictReader(f))
    assert len(found) == 3 and all(r["path"] != str(images[0]) for r in found)  # the query is not its own neighbour
    assert (out / "map.png").stat().st_size > 0 and len(list((out / "clusters").rglob("*.png"))) == len(images)
    # predict on a pretrain checkpoint writes embeddings too
    weights = str(pretrained / "best.pt")
    assert main(["predict", "--weights", weights, str(images[0]), "--out", str(tmp_path / "p")]) == 0
    assert "embedding of 96 dimensions" in capsys.readouterr().out
    # val on a labelled folder: the k-NN score of the embedding
    assert main(["val", "--weights", weights, "--data", str(shapes_folder / "val"), "--out", str(tmp_path / "v")]) == 0
    assert "knn_top1=" in capsys.readouterr().out


@pytest.mark.parametrize("method", ["vicreg", "mae"])
def test_each_method_trains_and_resumes(tmp_path, method):
    run = cnnkit.train(task="pretrain", data="shapes:24", model="fastnet_tiny", method=method, epochs=1, batch=8,
                       imgsz=32, project=str(tmp_path), verbose=False)
    assert np.isfinite(run.best["val_loss"]) and "spread" in run.best
    again = cnnkit.train(task="pretrain", resume=True, name=run.run_dir.name, project=str(tmp_path), epochs=2,
                         verbose=False)
    assert again.epochs_run == 2


def test_constant_images_warn_of_collapse(tmp_path, caplog):
    for i in range(12):
        (tmp_path / "grey").mkdir(exist_ok=True)
        Image.new("L", (32, 32), 128).save(tmp_path / "grey" / f"{i}.png")
    with caplog.at_level(logging.WARNING, logger="cnnkit"):
        cnnkit.train(task="pretrain", data=str(tmp_path / "grey"), model="fastnet_tiny", epochs=1, batch=4,
                     val_split=0.3, project=str(tmp_path / "runs"), verbose=False)
    assert "collapsed" in caplog.text


def test_any_layout_gives_its_images_not_its_masks(tmp_path):
    for split in ("train", "val"):
        for folder in ("images", "masks"):
            (tmp_path / split / folder).mkdir(parents=True)
            Image.new("L", (8, 8)).save(tmp_path / split / folder / "a.png")
    found = find_unlabelled(str(tmp_path))
    assert sorted(p.parent.name for p in found.items) == ["images", "images"]


@pytest.mark.parametrize("args, words", [
    (["--model", "selfsup"], "built around another model's encoder"),
    (["--loss", "ce"], "--loss is an option of classify, segment and recognize, not pretrain"),
    (["--method", "byol"], "invalid choice"),
])
def test_bad_pretrain_flags_are_one_line(tmp_path, shapes_folder, capsys, args, words):
    try:
        code = main(["train", "pretrain", "--data", str(shapes_folder), "--project", str(tmp_path), *args])
    except SystemExit as e:  # argparse's own errors exit
        code = e.code
    assert code == 2
    err = capsys.readouterr().err
    assert words in err and "Traceback" not in err


def test_a_mismatched_encoder_is_refused(tmp_path, shapes_folder, pretrained, capsys):
    assert main(["train", "classify", "--data", str(shapes_folder), "--model", "resnet18", "--epochs", "1",
                 "--project", str(tmp_path), "--pretrained", str(pretrained / "best.pt")]) == 2
    err = capsys.readouterr().err
    assert "fastnet network and this model's is a resnet" in err and "Traceback" not in err


def test_val_group_holds_out_whole_groups(tmp_path, caplog):
    """`cnnkit train pretrain --val-group` was accepted and ignored: its own random hold-out put frames of
    every sequence on both sides. It now holds out by the hold-out every task shares."""
    from cnnkit.config import make_config
    from cnnkit.errors import CnnkitError
    from cnnkit.tasks import get_task

    rng = np.random.default_rng(0)
    for g in range(4):
        for i in range(6):
            (tmp_path / "frames").mkdir(exist_ok=True)
            Image.fromarray(rng.integers(0, 255, (16, 16, 3), np.uint8)).save(tmp_path / "frames" / f"s{g}_{i}.png")
    config = {"task": "pretrain", "data": str(tmp_path / "frames"), "imgsz": 16, "cache": "none", "val_split": 0.25,
              "val_group": r"^(s\d)_"}
    with caplog.at_level(logging.INFO, logger="cnnkit"):
        data = get_task("pretrain").build_data(make_config(config))
    sequences = lambda items: {p.name.split("_")[0] for p in items}  # noqa: E731
    assert not sequences(data.train.items) & sequences(data.val.items) and len(data.val) == 6
    assert "validation holds out 1 of 4 groups whole" in caplog.text
    with pytest.raises(CnnkitError, match="--val-group '.': shapes:16 has no file names"):
        get_task("pretrain").build_data(make_config({**config, "data": "shapes:16", "val_group": "."}))

"""Two CPU processes under torchrun (gloo) give the metrics of one process with the same global batch."""

import csv
import json
import os
import subprocess
import sys

import pytest
import torch

from cnnkit.engine.checkpoint import load_checkpoint

ARGS = ["train", "classify", "--data", "shapes:64", "--model", "basic_cnn", "--imgsz", "24", "--epochs", "2",
        "--batch", "16", "--lr", "0.05", "--augment", "none", "--no-verbose"]


def _run(cmd, tmp_path):
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout + proc.stderr


@pytest.mark.slow
def test_two_processes_match_one(tmp_path):
    recipe = tmp_path / "nobn.yaml"  # no batch norm and no dropout: per-rank statistics would differ
    recipe.write_text("model_args: {preset: tiny, norm: none, dropout: 0.0}\n")
    common = ARGS + ["--config", str(recipe), "--project", str(tmp_path)]
    _run([sys.executable, "-m", "cnnkit.cli.main", *common, "--name", "one"], tmp_path)
    said = _run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                 "-m", "cnnkit.cli.main", *common, "--name", "two"], tmp_path)
    assert said.count("run folder:") == 1 and said.count("next:") == 1  # rank 0 alone reports
    assert said.count("splits:") <= 1
    rows = {}
    for name in ("one", "two"):
        with (tmp_path / "classify" / name / "metrics.csv").open() as f:
            rows[name] = list(csv.DictReader(f))
    assert len(rows["one"]) == len(rows["two"]) == 2
    for a, b in zip(rows["one"], rows["two"]):
        assert a["top1"] == b["top1"] and a["f1"] == b["f1"]
        assert abs(float(a["val_loss"]) - float(b["val_loss"])) < 1e-4
        assert abs(float(a["train_loss"]) - float(b["train_loss"])) < 1e-4
    wa = load_checkpoint(tmp_path / "classify" / "one" / "last.pt")["model"]
    wb = load_checkpoint(tmp_path / "classify" / "two" / "last.pt")["model"]
    for k in wa:
        assert torch.allclose(wa[k], wb[k], atol=1e-5), k
    assert not (tmp_path / "classify" / "two2").exists()  # only rank 0 chose and wrote a folder


@pytest.mark.slow
def test_segment_metrics_are_reduced_over_ranks(tmp_path):
    """Two ranks each see half of the validation images; the logged mIoU must be that of all of them."""
    recipe = tmp_path / "seg.yaml"
    recipe.write_text("model_args: {widths: [8, 8, 16, 16, 16], decoder_channels: [16, 16, 8, 8, 8]}\n")
    _run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "cnnkit.cli.main",
          "train", "segment", "--data", "shapes:32", "--model", "unet_basic", "--epochs", "1",
          "--batch", "8", "--no-verbose", "--config", str(recipe), "--project", str(tmp_path), "--name", "two"],
         tmp_path)
    run = tmp_path / "segment" / "two"
    with (run / "metrics.csv").open() as f:
        logged = list(csv.DictReader(f))[-1]
    _run([sys.executable, "-m", "cnnkit.cli.main", "val", "--weights", str(run / "last.pt"), "--data", "shapes:32",
          "--out", str(tmp_path / "v")], tmp_path)
    single = json.loads((tmp_path / "v" / "metrics.json").read_text())
    # batches of another size may flip a pixel's argmax in float32 (2e-6 seen); one rank's half is far further off
    assert abs(float(logged["miou"]) - single["miou"]) < 1e-4
    assert abs(float(logged["pixel_acc"]) - single["pixel_acc"]) < 1e-4

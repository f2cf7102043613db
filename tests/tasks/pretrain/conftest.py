"""A tiny pretrain run that the pretraining tests fine-tune from and embed with."""

from __future__ import annotations

import pytest

from cnnkit.cli.main import main

TINY = ["--model", "fastnet_tiny", "--epochs", "1", "--batch", "16", "--imgsz", "32", "--save-period", "0"]


@pytest.fixture
def pretrained(tmp_path, shapes_folder):
    """The run folder of one epoch of SimCLR on 48 shapes, k-NN scored on 16 labelled ones."""
    args = ["train", "pretrain", "--data", str(shapes_folder / "train"), "--val", str(shapes_folder / "val"), *TINY,
            "--project", str(tmp_path / "runs")]
    assert main(args) == 0
    return tmp_path / "runs" / "pretrain" / "exp"

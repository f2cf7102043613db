"""A click model trained once for the click tests: a tiny U-Net on boxes that a click makes plain (seconds)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import cnnkit

SIDE = 48  # px of the synthetic images
TINY = {"widths": [8, 16, 16, 24, 24], "decoder_channels": [24, 16, 16, 8, 8]}


def write_boxes(root: Path, splits: dict[str, tuple[int, int]]) -> Path:
    """Segmentation data (images/ and masks/ per split, classes.csv): 1-3 solid boxes of bright colours on dark
    noise, each box's region class 1 ("box"): a click on a box selects that box. ``splits``: {split: (n, seed)}."""
    (root).mkdir(parents=True, exist_ok=True)
    (root / "classes.csv").write_text("index,name,r,g,b\n0,background,0,0,0\n1,box,255,0,0\n")
    for split, (n, seed) in splits.items():
        rng = np.random.default_rng(seed)
        for folder in ("images", "masks"):
            (root / split / folder).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            image = rng.integers(0, 60, (SIDE, SIDE, 3)).astype(np.uint8)
            mask = np.zeros((SIDE, SIDE), np.uint8)
            for _ in range(int(rng.integers(1, 4))):
                h, w = rng.integers(10, 22, 2)
                y, x = rng.integers(0, SIDE - h), rng.integers(0, SIDE - w)
                image[y:y + h, x:x + w] = rng.integers(150, 256, 3)
                mask[y:y + h, x:x + w] = 1
            Image.fromarray(image).save(root / split / "images" / f"{i:03d}.png")
            Image.fromarray(mask).save(root / split / "masks" / f"{i:03d}.png")
    return root


@pytest.fixture(scope="session")
def boxes(tmp_path_factory) -> Path:
    return write_boxes(tmp_path_factory.mktemp("boxes"), {"train": (48, 0), "val": (8, 1)})


@pytest.fixture(scope="session")
def clicker_run(boxes, tmp_path_factory) -> Path:
    """A run folder (best.pt) of a click model trained for a few seconds on ``boxes``."""
    project = tmp_path_factory.mktemp("runs")
    cnnkit.train(task="click", data=str(boxes), model="unet_basic", model_args=TINY, epochs=4, batch=8, imgsz=48,
                 lr=0.01, warmup_epochs=0.2, project=str(project), name="boxes", val_objects=12, verbose=False)
    return project / "click" / "boxes"

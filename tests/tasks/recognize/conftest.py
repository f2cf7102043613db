"""One tiny recognition model for the session: identities are random grey patterns, images their noisy copies."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import cnnkit

SIDE = 32


def pattern(rng: np.random.Generator) -> np.ndarray:
    """An identity: a smooth random pattern (SIDE x SIDE, 0..1)."""
    small = Image.fromarray((rng.random((4, 4)) * 255).astype(np.uint8))
    return np.asarray(small.resize((SIDE, SIDE), Image.BILINEAR), np.float32) / 255


def write_identities(root: Path, identities: int = 8, per_identity: int = 16, seed: int = 0) -> Path:
    """``root/id<k>/<j>.png``: noisy, brightness-shifted copies of each identity's pattern."""
    rng = np.random.default_rng(seed)
    for k in range(identities):
        base = pattern(rng)
        folder = root / f"id{k}"
        folder.mkdir(parents=True)
        for j in range(per_identity):
            image = base * rng.uniform(0.8, 1.2) + rng.uniform(-0.1, 0.1) + rng.normal(0, 0.04, base.shape)
            Image.fromarray((np.clip(image, 0, 1) * 255).astype(np.uint8)).save(folder / f"{j}.png")
    return root


@pytest.fixture(scope="session")
def identities(tmp_path_factory) -> Path:
    return write_identities(tmp_path_factory.mktemp("identities") / "people")


@pytest.fixture(scope="session")
def recognizer(tmp_path_factory, identities) -> Path:
    """A run folder of `cnnkit train recognize` (3 of 8 identities held out)."""
    project = tmp_path_factory.mktemp("recognize_runs")
    result = cnnkit.train(task="recognize", data=str(identities), model="fastnet_small", imgsz=SIDE, epochs=3,
                          batch=8, val_split=0.34, dim=32, project=str(project), name="r", save_period=0,
                          verbose=False)
    return result.run_dir

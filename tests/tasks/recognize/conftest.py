"""One tiny recognition model for the session: identities are random grey patterns, images their noisy copies."""

from __future__ import annotations

from pathlib import Path

import pytest

import cnnkit
from cnnkit.data import synthetic

SIDE = 32


def write_identities(root: Path, identities: int = 8, per_identity: int = 16, seed: int = 0) -> Path:
    """``root/id<k>/<j>.png``: noisy copies of each identity's pattern (cnnkit's synthetic identities)."""
    return synthetic.write_identities(root, identities, per_identity, SIDE, seed)


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

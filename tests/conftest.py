"""Shared fixtures: fake image files in every layout, written fresh for each test."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import cnnkit.tasks  # noqa: F401 - registers the built-in tasks, whose training options make_config reads
from cnnkit.data.synthetic import SHAPE_NAMES, make_classification

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "datasets"

# The suite must pass on any seed and thread count: rerun it with CNNKIT_TEST_SEED=1 (2, ...) and with
# OMP_NUM_THREADS=1 to check that no test depends on the exact numerics of a model it trains.
TEST_SEED = int(os.environ.get("CNNKIT_TEST_SEED", "0"))
# under pytest-xdist (make test runs two workers) the cores are shared out, so that workers do not fight over them
WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT") or 1)
torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS") or max(1, min(2, os.cpu_count() or 1) // WORKERS)))


def pytest_collection_modifyitems(config, items):
    if not torch.cuda.is_available():
        skip = pytest.mark.skip(reason="needs a CUDA device")
        for item in items:
            if "gpu" in item.keywords:
                item.add_marker(skip)


@pytest.fixture(autouse=True)
def _seeded_runs(monkeypatch):
    """Runs that name no seed take CNNKIT_TEST_SEED (0 by default, which changes nothing)."""
    if not TEST_SEED:
        return
    import cnnkit.config

    plain = cnnkit.config.make_config

    def make_config(values=None, *args, **kwargs):
        return plain({"seed": TEST_SEED, **dict(values or {})}, *args, **kwargs)

    for module in list(sys.modules.values()):  # the package's modules and the tests' own imports
        if module is not None and vars(module).get("make_config") is plain:
            monkeypatch.setattr(module, "make_config", make_config)


def write_image_folder(root: Path, splits: dict[str, tuple[int, int]], size: int) -> Path:
    """An ImageFolder tree root/<split>/<shape>/<i>.png; ``splits``: {split: (images, seed)}."""
    for split, (n, seed) in splits.items():
        images, labels = make_classification(n, seed=seed, size=size)
        for i, (img, lab) in enumerate(zip(images, labels)):
            folder = root / split / SHAPE_NAMES[lab]
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(img).save(folder / f"{i:03d}.png")
    return root


@pytest.fixture
def shapes_folder(tmp_path: Path) -> Path:
    """An ImageFolder tree root/{train,val}/<shape>/<i>.png of 32 px synthetic scenes."""
    return write_image_folder(tmp_path / "shapes", {"train": (48, 0), "val": (16, 1)}, 32)


def write_png(path: Path, array: np.ndarray, mode: str | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array, mode).save(path) if mode else Image.fromarray(array).save(path)
    return path


@pytest.fixture
def shared_fashion() -> Path:
    path = SHARED / "fashion-mnist"
    if not path.is_dir():
        pytest.skip(f"real data not found at {path} (the ../shared/datasets folder beside the checkout)")
    return path

"""Synthetic scenes with known regions: three flat colours with noise, placed differently per image."""

from __future__ import annotations

import numpy as np
import pytest

COLOURS = np.array([[200, 40, 40], [40, 60, 200], [40, 190, 60]], dtype=np.float64)  # red, blue, green


def scene(index: int, size: int = 48) -> tuple[np.ndarray, np.ndarray]:
    """``(H, W, 3)`` uint8 image and ``(H, W)`` region ids 0..2: a red left part, a blue right part (split at a
    column that moves with ``index``) and a green square whose corner moves too."""
    rng = np.random.default_rng(index)
    truth = np.zeros((size, size), np.int64)
    split = size // 3 + (index * 5) % (size // 3)
    truth[:, split:] = 1
    corner = 4 + (index * 7) % (size // 2)
    truth[corner:corner + size // 3, corner:corner + size // 3] = 2
    image = COLOURS[truth] + rng.normal(0, 12, (size, size, 3))
    return image.clip(0, 255).astype(np.uint8), truth


@pytest.fixture(scope="session")
def scenes() -> list[tuple[np.ndarray, np.ndarray]]:
    return [scene(i) for i in range(4)]


def point_seeds(truth: np.ndarray, per_class: int, seed: int = 0) -> np.ndarray:
    """``per_class`` seeded pixels per region (values 1..3), drawn at random inside each region."""
    rng = np.random.default_rng(seed)
    seeds = np.zeros(truth.shape, np.int32)
    for c in np.unique(truth):
        ys, xs = np.nonzero(truth == c)
        pick = rng.choice(len(ys), per_class, replace=False)
        seeds[ys[pick], xs[pick]] = c + 1
    return seeds

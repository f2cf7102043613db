"""Data and seeds for benchmarks/grow.py: CamVid val and 50 fixed DSB2018 images; seeds drawn inside eroded masks.

Seeds are drawn with a fixed numpy seed per (image, seeds per class), so a run on the first N images draws
the same seeds for them as a run on all images.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage
from skimage.morphology import disk

CAMVID_VOID = 11
DSB_IMAGES = 50  # a fixed-seed random choice among the sorted ids
ERODE_PX = 5


@dataclass
class DataSet:
    name: str
    images: list[np.ndarray]  # (H, W, 3) uint8
    truths: list[np.ndarray]  # (H, W) int64 class maps
    classes: list[str]
    ignore_index: int | None = None
    instances: list[np.ndarray] | None = None  # DSB2018: (H, W) nucleus ids, 0 = background


def read_rgb(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.array(im.convert("RGB"))  # writable: torch.from_numpy warns on read-only arrays


def read_map(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im).astype(np.int64)


def load_camvid(root: Path, limit: int = 0) -> DataSet:
    """CamVid val: 11 classes, Void (11) ignored; the first ``limit`` images by name (0: all 101)."""
    paths = sorted((root / "val" / "images").glob("*.webp"))
    paths = paths[:limit] if limit else paths
    with (root / "classes.csv").open() as f:
        classes = [row["name"] for row in csv.DictReader(f) if int(row["index"]) < CAMVID_VOID]
    return DataSet("CamVid", [read_rgb(p) for p in paths],
                   [read_map(root / "val" / "masks" / f"{p.stem}.png") for p in paths], classes, CAMVID_VOID)


def dsb_ids(root: Path) -> list[str]:
    ids = sorted(p.stem for p in (root / "images").glob("*.png"))
    chosen = np.random.default_rng(0).choice(len(ids), min(DSB_IMAGES, len(ids)), replace=False)
    return [ids[i] for i in sorted(chosen)]


def load_dsb(root: Path, limit: int = 0) -> DataSet:
    """50 fixed DSB2018 images as RGB, nucleus (1) vs background (0), and their instance maps."""
    ids = dsb_ids(root)
    ids = ids[:limit] if limit else ids
    instances = [read_map(root / "masks" / f"{i}.png") for i in ids]
    return DataSet("DSB2018", [read_rgb(root / "images" / f"{i}.png") for i in ids],
                   [(m > 0).astype(np.int64) for m in instances], ["background", "nucleus"], None, instances)


def eroded(mask: np.ndarray, radius: int = ERODE_PX) -> np.ndarray:
    """``mask`` eroded by a disc of ``radius`` px (image borders count as outside); the mask if that empties it."""
    inner = ndimage.binary_erosion(mask, structure=disk(radius))
    return inner if inner.any() else mask


def draw_seeds(truth: np.ndarray, classes: list[int], per_class: int, rng: np.random.Generator) -> np.ndarray:
    """Seed map (0 unknown, class + 1): ``per_class`` pixels of each class present, uniform in its eroded mask
    (fewer when the eroded mask has fewer pixels)."""
    seeds = np.zeros(truth.shape, dtype=np.int64)
    for c in classes:
        mask = truth == c
        if not mask.any():
            continue
        where = np.flatnonzero(eroded(mask))
        seeds.flat[rng.choice(where, min(per_class, where.size), replace=False)] = c + 1
    return seeds


def class_seeds(data: DataSet, per_class: int, seed: int = 0) -> list[np.ndarray]:
    classes = list(range(len(data.classes)))
    return [draw_seeds(t, classes, per_class, np.random.default_rng([seed, i, per_class]))
            for i, t in enumerate(data.truths)]


def clicks(instances: np.ndarray) -> np.ndarray:
    """One click per nucleus, valued with its id: the centre-most pixel (maximum of its distance transform)."""
    out = np.zeros(instances.shape, dtype=np.int64)
    for index, box in enumerate(ndimage.find_objects(instances)):
        if box is None:
            continue
        nucleus = np.pad(instances[box] == index + 1, 1)
        r, c = np.unravel_index(np.argmax(ndimage.distance_transform_edt(nucleus)), nucleus.shape)
        out[box[0].start + r - 1, box[1].start + c - 1] = index + 1
    return out


def instance_seeds(data: DataSet, per_class: int, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per image: (seed map: ``per_class`` background seeds = 1, one click per nucleus = 2; click map of ids)."""
    assert data.instances is not None
    out = []
    for i, inst in enumerate(data.instances):
        seeds = draw_seeds((inst > 0).astype(np.int64), [0], per_class, np.random.default_rng([seed, i, per_class]))
        click = clicks(inst)
        seeds[click > 0] = 2
        out.append((seeds, click))
    return out


def nucleus_ious(pred: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """IoU of each true nucleus ``i`` with predicted instance ``i`` (0 when there is none)."""
    n = int(max(truth.max(), pred.max())) + 1
    inter = np.bincount(truth[(truth == pred) & (truth > 0)], minlength=n).astype(np.float64)
    union = np.bincount(truth.ravel(), minlength=n) + np.bincount(pred.ravel(), minlength=n) - inter
    ids = np.unique(truth[truth > 0])
    return inter[ids] / union[ids]

"""Objects to click on for benchmarks/clicks.py: DSB2018's held-out nuclei, CamVid's regions, synthetic shapes.

Every image becomes an object map, ``(H, W)`` int32 (0: no object; each object one id), and a valid map
(False where the ground truth is ignored, e.g. CamVid's Unlabelled) or None:

- instance layout (DSB2018: ``images/<id>.png``, ``masks/<id>.png`` 16-bit instance ids, 0 background): each
  instance id is an object.
- segment layout (CamVid: ``images/*.webp``, ``masks/<stem>.png`` class indices): each 8-connected region of a
  class that is neither background nor ignored is an object.
- ``synthetic[:N]``: N scenes of cnnkit's built-in shapes (64 x 64), each shape an object: the smoke test.

DSB2018 has no validation split of its own: ``split_dsb`` holds out a fixed 10% of its images (seed 0) as
folders of symbolic links, so that the click model trains on ``OUT/train`` and is scored on ``OUT/val``.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from cnnkit.data.masks import IGNORE
from cnnkit.tasks.click.sampling import region_map

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff", ".bmp")


@dataclass
class ObjectSet:
    name: str
    sources: list[Path | np.ndarray]  # an image file, or the image itself ((H, W, 3) uint8)
    objects: list[np.ndarray] = field(default_factory=list)  # per image: (H, W) int32 object ids
    valid: list[np.ndarray | None] = field(default_factory=list)  # per image: (H, W) bool, or None: all

    def image(self, i: int) -> np.ndarray:
        source = self.sources[i]
        if isinstance(source, np.ndarray):
            return source
        with Image.open(source) as im:
            return np.array(im.convert("RGB"))

    def image_name(self, i: int) -> str:
        source = self.sources[i]
        return source.stem if isinstance(source, Path) else f"scene{i:04d}"

    def targets(self, min_area: int) -> list[tuple[int, int, int]]:
        """(image index, object id, area in px) of every object of at least ``min_area`` px."""
        out = []
        for i, ids in enumerate(self.objects):
            values, counts = np.unique(ids[ids > 0], return_counts=True)
            out += [(i, int(v), int(n)) for v, n in zip(values, counts) if n >= min_area]
        return out


def read_map(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im).astype(np.int64)


def image_files(folder: Path) -> list[Path]:
    images = sorted(p for p in (folder / "images").iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not images:
        raise SystemExit(f"{folder}/images: no images")
    return images


def regions(classes: np.ndarray, background: set[int], ignore: int | None) -> np.ndarray:
    """Class map -> object ids as the click task makes them (``region_map``: each 8-connected region of a class,
    numbered from 1, class by class); ignored pixels 0 here (``valid`` keeps them out of the IoU)."""
    ids = np.where(classes == ignore, IGNORE, classes) if ignore is not None else classes
    return np.maximum(region_map(ids, background), 0)


def load_folder(folder: Path, layout: str, limit: int = 0, background: tuple[int, ...] = (0,),
                ignore: int | None = None) -> ObjectSet:
    """``folder/images`` and ``folder/masks/<stem>.png``: the first ``limit`` images by name (0: all)."""
    paths = image_files(folder)
    paths = paths[:limit] if limit else paths
    data = ObjectSet(f"{folder.resolve().parent.name}/{folder.name}", list(paths))
    for p in paths:
        truth = read_map(folder / "masks" / f"{p.stem}.png")
        if layout == "instance":
            data.objects.append(np.where(truth == ignore, 0, truth).astype(np.int32) if ignore is not None
                                else truth.astype(np.int32))
        else:
            data.objects.append(regions(truth, set(background), ignore))
        data.valid.append(truth != ignore if ignore is not None else None)
    return data


def load_synthetic(n: int, seed: int = 0, size: int = 64) -> ObjectSet:
    """``n`` shapes scenes; each visible shape an object."""
    from cnnkit.data.synthetic import make_scene

    data = ObjectSet("synthetic", [])
    for i in range(n):
        scene = make_scene(i, seed=seed, size=size)
        ids = np.zeros(scene.semantic.shape, np.int32)
        for k, mask in enumerate(scene.instances, start=1):
            ids[mask] = k
        data.sources.append(scene.image)
        data.objects.append(ids)
        data.valid.append(None)
    return data


def split_dsb(root: Path, out: Path, fraction: float = 0.1, seed: int = 0) -> tuple[list[str], list[str]]:
    """Hold out ``fraction`` of DSB2018's images (a fixed permutation of the sorted ids by ``seed``):
    ``out/train`` and ``out/val``, each ``images/`` and ``masks/`` of relative symbolic links to ``root``'s files, plus
    ``out/train.txt`` and ``out/val.txt`` (the ids). Links already there and pointing to the same file are
    kept; anything else in the way stops it. Returns (train ids, val ids)."""
    root = root.resolve()
    ids = [p.stem for p in image_files(root)]
    order = np.random.default_rng(seed).permutation(len(ids))
    n_val = max(1, math.ceil(fraction * len(ids)))
    val = sorted(ids[i] for i in order[:n_val])
    train = sorted(ids[i] for i in order[n_val:])
    for split, chosen in (("train", train), ("val", val)):
        for kind in ("images", "masks"):
            folder = out / split / kind
            folder.mkdir(parents=True, exist_ok=True)
            for stem in chosen:
                link, target = folder / f"{stem}.png", root / kind / f"{stem}.png"
                if link.is_symlink() and link.resolve() == target.resolve():
                    continue
                if link.exists() or link.is_symlink():
                    raise SystemExit(f"{link}: already there and not a link to {target}; use an empty OUT")
                # relative, so that the folders still work where the tree is copied with the data beside it
                link.symlink_to(os.path.relpath(target, folder.resolve()))
        (out / f"{split}.txt").write_text("".join(f"{s}\n" for s in chosen))
    return train, val

"""Find an instance data set in any supported layout, split it, and describe its classes.

``--data`` may be: a COCO JSON file; a folder with ``train/`` and ``val/`` (each any layout below)
or with ``train.json`` and ``val.json``; a folder with ``images/`` + ``masks/`` (instance maps or
per-object PNG folders), ``images/`` + ``labels/`` (YOLO), or ``annotations.json`` (COCO); the
DSB2018 download layout; or ``shapes[:N]`` (synthetic). Without a val split, ``--val-split``
(default 0.1) of the images is held out with ``--seed``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cnnkit.data.images import probe_channels
from cnnkit.data.instance import InstanceItem, Objects
from cnnkit.data.instance_formats import (
    LABEL_DIRS,
    class_names,
    dsb_original,
    read_coco,
    read_map_folder,
    read_yolo,
    yolo_names,
)
from cnnkit.data.segment import IMAGE_DIRS, MASK_DIRS, _child
from cnnkit.data.synthetic import SHAPE_NAMES, make_scene
from cnnkit.errors import CnnkitError
from cnnkit.log import LOGGER

SHAPES_SIZE = 96  # side of the synthetic scenes for the instance task (pixels)
DEFAULT_VAL_SPLIT = 0.1


@dataclass
class InstanceData:
    train: list[InstanceItem] | None
    val: list[InstanceItem]
    classes: list[str]
    channels: int
    layout: str


def synthetic_items(n: int, seed: int, size: int = SHAPES_SIZE) -> list[InstanceItem]:
    """Shapes scenes; every visible shape is an object of its kind."""
    items = []
    for i in range(n):
        scene = make_scene(i, seed, size, max_distractors=3)
        id_map = np.zeros((size, size), np.int32)
        for k, mask in enumerate(scene.instances, 1):
            id_map[mask] = k
        classes = {k: int(c) for k, c in enumerate(scene.instance_classes, 1)}
        items.append(InstanceItem(scene.image, Objects((size, size), id_map=id_map, map_classes=classes)))
    return items


def read_split(folder: Path, skip_bad: bool, names: list[str] | None) -> tuple[list[InstanceItem], list[str], str]:
    """One folder in any layout -> items, class names, layout name."""
    if folder.is_file() and folder.suffix.lower() == ".json":
        items, found = read_coco(folder, skip_bad, names)
        return items, found, "coco"
    if not folder.is_dir():
        raise CnnkitError(f"{folder}: not a folder or a COCO .json file; see `cnnkit train --help` for the layouts")
    coco = folder / "annotations.json"
    if coco.is_file():
        items, found = read_coco(coco, skip_bad, names)
        return items, found, "coco"
    image_dir = _child(folder, IMAGE_DIRS)
    label_dir = _child(folder, LABEL_DIRS)
    if image_dir is not None and label_dir is not None and any(label_dir.glob("*.txt")):
        found = names or yolo_names(folder)
        if not found:
            raise CnnkitError(f"{folder}: YOLO labels need class names: add classes.txt (one per line) or data.yaml")
        return read_yolo(image_dir, label_dir, found, skip_bad), found, "yolo"
    mask_dir = _child(folder, MASK_DIRS)
    names = names or class_names(folder)
    if image_dir is not None and mask_dir is not None:
        return read_map_folder(image_dir, mask_dir, names, skip_bad), names, "masks"
    items = dsb_original(folder)
    if items is not None:
        return items, names, "object-pngs"
    raise CnnkitError(f"{folder}: no instance layout found; expected images/ with masks/ or labels/, "
                      "annotations.json, train/ and val/, or a COCO .json file")


def find_splits(root: Path) -> dict[str, Path] | None:
    for train, val in (("train", "val"), ("train.json", "val.json")):
        if (root / train).exists() and (root / val).exists():
            return {"train": root / train, "val": root / val}
    if (root / "train").exists() or (root / "train.json").exists():
        raise CnnkitError(f"{root}: a train split but no val split; add val/ (or val.json)")
    return None


def load_instance_data(source: str, *, val_split: float = 0.0, seed: int = 0, skip_bad: bool = False,
                       meta: dict | None = None, for_eval: bool = False) -> InstanceData:
    """Find, read and split the data; ``meta`` (a checkpoint's) fixes classes and channels."""
    names = list(meta["classes"]) if meta else None
    if not source:
        raise CnnkitError("no data given; pass --data with a COCO .json, a folder of images/ and masks/, or 'shapes'")
    if source.split(":")[0] == "shapes":
        _, _, n = source.partition(":")
        if n and not n.isdigit():
            raise CnnkitError(f"--data {source}: expected 'shapes' or 'shapes:N' with N the number of training images")
        n_train = int(n or 1000)
        val = synthetic_items(max(n_train // 4, 4), seed + 10_000)
        train = None if for_eval else synthetic_items(n_train, seed)
        return InstanceData(train, val, list(SHAPE_NAMES), 3, "synthetic")
    root = Path(source)
    splits = find_splits(root) if root.is_dir() else None
    if splits:
        val, classes, layout = read_split(splits["val"], skip_bad, names)
        train = None if for_eval else read_split(splits["train"], skip_bad, names or classes)[0]
    else:
        items, classes, layout = read_split(root, skip_bad, names)
        if for_eval:
            train, val = None, items
        else:
            train, val = split_items(items, val_split or DEFAULT_VAL_SPLIT, seed, root)
    for split, items in (("train", train), ("val", val)):
        if items is not None and not items:
            raise CnnkitError(f"{root}: the {split} split has no images; add images")
    channels = (meta or {}).get("in_chans") or probe_channels([i.image for i in (train or val)])
    LOGGER.info("instance data: %s layout, %s train / %d val images, %d classes (%s)", layout,
                len(train) if train is not None else "-", len(val), len(classes), ", ".join(classes[:10]))
    return InstanceData(train, val, classes, channels, layout)


def split_items(items: list[InstanceItem], fraction: float, seed: int, root: Path
                ) -> tuple[list[InstanceItem], list[InstanceItem]]:
    """A fixed random ``fraction`` held out (same seed, same split)."""
    n_val = max(1, int(round(len(items) * fraction)))
    if n_val >= len(items):
        raise CnnkitError(f"{root}: {len(items)} image(s) are too few to hold out {fraction:.0%} for validation")
    order = np.random.default_rng(seed).permutation(len(items))
    return [items[i] for i in sorted(order[n_val:])], [items[i] for i in sorted(order[:n_val])]

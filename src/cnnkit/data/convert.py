"""``cnnkit data convert``: instance annotations between COCO JSON, YOLO segmentation text files and
instance-map folders.

Masks become polygons by tracing their outlines (OpenCV) on a 2x nearest-upsampled mask, which puts
the vertices on pixel edges rather than pixel centres: rasterised again they give back the mask
(IoU >= 0.99 on the test fixtures). Polygons cannot hold holes; in COCO output an object whose
polygons fall below POLYGON_MIN_IOU (a hole, a one-pixel line) is written as RLE instead, exactly;
YOLO has no RLE, so such objects keep their outline and are counted in a warning.

COCO's crowd regions (``iscrowd: 1``) mean "ignore this region", not an object: COCO output keeps
them as such; YOLO files and instance maps have no way to mark one, so they are left out and counted.
"""

from __future__ import annotations

import json
import shutil
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import cast

import cv2
import numpy as np
from PIL import Image
from pycocotools import mask as mask_util

from cnnkit.data.instance import InstanceItem
from cnnkit.data.layout import Layout, read_with
from cnnkit.data.rle import encode
from cnnkit.errors import CnnkitError
from cnnkit.log import LOGGER

FORMATS = ("coco", "yolo", "masks")
POLYGON_MIN_IOU = 0.99  # below this a COCO object is written as RLE instead of polygons
CROWD = "crowd regions (iscrowd 1: regions to ignore, not objects) left out"
UPSAMPLE = 2  # trace outlines at this zoom so vertices sit on pixel edges


def mask_to_polygons(mask: np.ndarray) -> list[list[float]]:
    """(H, W) bool -> outer outlines as flat [x0, y0, x1, y1, ...] lists in pixel coordinates."""
    big = cv2.resize(mask.astype(np.uint8), None, fx=UPSAMPLE, fy=UPSAMPLE, interpolation=cv2.INTER_NEAREST)
    contours, _ = cv2.findContours(big, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    return [((c.reshape(-1, 2) + 0.5) / UPSAMPLE).round(2).ravel().tolist() for c in contours if len(c) >= 3]


def join_polygons(polygons: list[list[float]]) -> list[float]:
    """One polygon from several parts, linked by zero-width bridges between their nearest vertices
    (walked there and back), so a YOLO line can hold an object split by an occluder."""
    joined = np.asarray(polygons[0]).reshape(-1, 2)
    for part in polygons[1:]:
        nxt = np.asarray(part).reshape(-1, 2)
        dist = ((joined[:, None] - nxt[None]) ** 2).sum(-1)
        i, j = np.unravel_index(dist.argmin(), dist.shape)
        joined = np.concatenate([joined[:i + 1], nxt[j:], nxt[:j + 1], joined[i:]])
    return joined.ravel().tolist()


def polygons_to_mask(polygons: list[list[float]], size: tuple[int, int]) -> np.ndarray:
    if not polygons:
        return np.zeros(size, bool)
    return mask_util.decode(mask_util.merge(mask_util.frPyObjects(polygons, *size))).astype(bool)


def mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0


def item_objects(item: InstanceItem) -> tuple[np.ndarray | None, np.ndarray, np.ndarray, np.ndarray, tuple]:
    """All objects of an item at full size: masks (N, H, W) or None, boxes, labels, crowd, (H, W)."""
    size = item.objects.size
    objs = item.objects.window((0, 0, *size))
    return objs.get("masks"), objs["boxes"], objs["labels"], objs["crowd"], size


def _copy_image(item: InstanceItem, folder: Path, index: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    if isinstance(item.image, Path):
        target = folder / item.image.name
        if not target.exists():
            shutil.copy2(item.image, target)
        return target
    target = folder / f"{index:05d}.png"
    Image.fromarray(item.image.squeeze()).save(target)
    return target


def write_coco(items: list[InstanceItem], classes: list[str], out: Path, counts: Counter) -> Path:
    """out/images/* and out/annotations.json (polygons; RLE for crowd and where polygons lose the mask)."""
    images: list[dict] = []
    anns: list[dict] = []
    for index, item in enumerate(items):
        path = _copy_image(item, out / "images", index)
        masks, boxes, labels, crowd, size = item_objects(item)
        images.append({"id": index + 1, "file_name": f"images/{path.name}", "height": size[0], "width": size[1]})
        for k in range(len(labels)):
            x0, y0, x1, y1 = (float(v) for v in boxes[k])
            ann = {"id": len(anns) + 1, "image_id": index + 1, "category_id": int(labels[k]) + 1,
                   "bbox": [x0, y0, x1 - x0, y1 - y0], "iscrowd": int(crowd[k]), "area": (x1 - x0) * (y1 - y0)}
            if masks is not None:
                mask = masks[k].astype(bool)
                polygons = [] if crowd[k] else mask_to_polygons(mask)
                if polygons and mask_iou(polygons_to_mask(polygons, size), mask) >= POLYGON_MIN_IOU:
                    ann["segmentation"] = polygons
                else:
                    ann["segmentation"] = encode(mask)
                    counts["objects written as RLE (holes or thin parts)"] += int(not crowd[k])
                ann["area"] = float(mask.sum())
            anns.append(ann)
    coco = {"images": images, "annotations": anns,
            "categories": [{"id": i + 1, "name": n} for i, n in enumerate(classes)]}
    path = out / "annotations.json"
    path.write_text(json.dumps(coco))
    return path


def write_yolo(items: list[InstanceItem], classes: list[str], out: Path, counts: Counter) -> Path:
    """out/images/*, out/labels/<stem>.txt (normalised polygons; boxes for boxes-only data), classes.txt."""
    (out / "labels").mkdir(parents=True, exist_ok=True)
    for index, item in enumerate(items):
        path = _copy_image(item, out / "images", index)
        masks, boxes, labels, crowd, (h, w) = item_objects(item)
        lines = []
        for k in range(len(labels)):
            if crowd[k]:
                counts[CROWD] += 1
                continue
            if masks is None:
                x0, y0, x1, y1 = boxes[k]
                lines.append(f"{labels[k]} {(x0 + x1) / 2 / w:.6f} {(y0 + y1) / 2 / h:.6f} "
                             f"{(x1 - x0) / w:.6f} {(y1 - y0) / h:.6f}")
                continue
            polygons = mask_to_polygons(masks[k].astype(bool))
            if not polygons:
                counts["objects too thin to outline, left out"] += 1
                continue
            polygon = join_polygons(polygons)  # a YOLO line holds one polygon per object
            if mask_iou(polygons_to_mask([polygon], (h, w)), masks[k].astype(bool)) < POLYGON_MIN_IOU:
                counts["objects whose holes or thin parts YOLO polygons cannot hold"] += 1
            xy = np.asarray(polygon).reshape(-1, 2) / [w, h]
            lines.append(f"{labels[k]} " + " ".join(f"{v:.6f}" for v in xy.ravel()))
        (out / "labels" / f"{path.stem}.txt").write_text("\n".join(lines) + ("\n" if lines else ""))
    (out / "classes.txt").write_text("\n".join(classes) + "\n")
    return out


def write_masks(items: list[InstanceItem], classes: list[str], out: Path, counts: Counter) -> Path:
    """out/images/*, out/masks/<stem>.png (8- or 16-bit ids; overlaps: later objects win), and with
    several classes out/masks/<stem>.json {id: class} and classes.txt."""
    (out / "masks").mkdir(parents=True, exist_ok=True)
    for index, item in enumerate(items):
        path = _copy_image(item, out / "images", index)
        masks, _, labels, crowd, size = item_objects(item)
        masks = np.zeros((0, *size), np.uint8) if masks is None else masks  # an image without objects
        counts[CROWD] += int(crowd.sum())
        masks, labels = masks[~crowd], labels[~crowd]
        ids = np.zeros(size, np.uint16)
        for k, mask in enumerate(masks, 1):
            counts["overlapping pixels given to the later object"] += int((ids[mask > 0] > 0).sum())
            ids[mask > 0] = k
        picture = Image.fromarray(ids.astype(np.uint8) if len(masks) <= 255 else ids)
        picture.save(out / "masks" / f"{path.stem}.png")
        if len(classes) > 1:
            table = {str(k): classes[int(c)] for k, c in enumerate(labels, 1)}
            (out / "masks" / f"{path.stem}.json").write_text(json.dumps(table))
    (out / "classes.txt").write_text("\n".join(classes) + "\n")
    return out


WRITERS = {"coco": write_coco, "yolo": write_yolo, "masks": write_masks}


def convert(source: str, to: str, out: str, skip_bad: bool = False, layouts: Sequence[Layout] = ()) -> list[Path]:
    """Read ``source`` in any instance layout (``layouts``: the task's, see ``cnnkit.data.layout``) and write it
    to ``out`` as ``to``; splits are kept."""
    if to not in WRITERS:
        raise CnnkitError(f"--to {to}: choose one of {', '.join(FORMATS)}")
    root, target = Path(source), Path(out)
    if target.exists() and any(target.iterdir()):
        raise CnnkitError(f"{target}: output folder is not empty; pick a new --out")
    found = read_with(layouts, source, "cnnkit.data.instance_data:read_instance", skip_bad=skip_bad)
    LOGGER.info("%s", found.line())
    read, names = {}, found.classes
    for split, items in found.splits.items():
        if not items:  # every split is read before any is written: an empty data set is never written
            raise CnnkitError(f"{root} ({found.labels.get(split, split)}): no images to convert; nothing was written")
        read["" if split == "all" else split] = items, found.extra["formats"][split]
    if to == "masks":
        boxes_only = next((i for items, _ in read.values() for i in items
                           if not i.objects.has_masks and i.objects.labels is not None and len(i.objects.labels)), None)
        if boxes_only is not None:
            raise CnnkitError(f"{boxes_only.image}: its objects have boxes but no masks, which cannot become an "
                              "instance map; convert to coco or yolo")
    # written beside the target and moved into place at the end: a failure leaves no half-written folder
    partial = target.parent / f".{target.name}.cnnkit-partial"
    shutil.rmtree(partial, ignore_errors=True)
    try:
        written = _write_all(read, cast("list[str]", names), to, partial, root, target)  # a list once read
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    if target.exists():
        target.rmdir()  # empty, as checked above
    partial.rename(target)
    return [target / p.relative_to(partial) for p in written]


def _write_all(read: dict, names: list[str], to: str, target: Path, root: Path, final: Path) -> list[Path]:
    """Each split of ``read`` written as ``to`` under ``target``, said as going to ``final``."""
    written = []
    for split, (items, layout) in read.items():
        counts: Counter = Counter()
        written.append(WRITERS[to](items, names, target / split if split else target, counts))
        for what, n in counts.items():
            if n:
                LOGGER.warning("warning: %s: %d %s", root, n, what)
        LOGGER.info("%s%s (%s, %d images) -> %s as %s", root, f" {split}" if split else "", layout, len(items),
                    final / written[-1].relative_to(target), to)
    return written


__all__ = ["convert", "mask_to_polygons", "polygons_to_mask"]

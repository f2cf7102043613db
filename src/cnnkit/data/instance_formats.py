"""Readers for the instance annotation formats users have; each gives ``InstanceItem``s and class names.

- COCO JSON: polygons, RLE (compressed or not), iscrowd, boxes, categories with names.
- Instance maps: ``images/`` + ``masks/``, one 8/16-bit PNG per image with one id per object and 0
  for background (../shared/datasets/dsb2018). Optional classes: ``classes.txt`` (one name per line)
  and a ``masks/<stem>.json`` of {id: class name} per image; otherwise one class, "object".
- One binary PNG per object: ``masks/<stem>/*.png`` (or the DSB2018 original ``<id>/images/<id>.png``
  + ``<id>/masks/*.png``).
- YOLO segmentation: ``images/`` + ``labels/<stem>.txt`` with ``class x1 y1 x2 y2 ...`` normalised
  polygons (``class cx cy w h`` lines are boxes) and names in ``classes.txt`` or ``data.yaml``.

Rules for bad annotations: a polygon with fewer than 3 points is skipped, an object with nothing
left is dropped, a box is clipped to its image and dropped if nothing is left: all counted in one
warning per file. An unknown category or class index, a missing image file, a label without image
or an empty image list is an error naming the file (``--skip-bad`` skips missing images instead).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from PIL import Image
from pycocotools import mask as mask_util

from cnnkit.data.coco_checks import check_coco, contained
from cnnkit.data.images import UNREADABLE
from cnnkit.data.instance import CocoOrigin, InstanceItem, Objects, masks_to_boxes_np, rle_of
from cnnkit.data.masks import LOSSY, report_problems
from cnnkit.data.segment import IMAGE_DIRS, MASK_DIRS, image_size, pair_by_stem
from cnnkit.data.walk import child_dir, is_hidden, list_images
from cnnkit.errors import CnnkitError
from cnnkit.log import LOGGER

LABEL_DIRS = ("labels",)
LabelIds = dict[int, int] | None  # YOLO label id -> class index, where they differ (data.yaml names keyed 1, 2, ...)


class Problems:
    """Counted annotation problems of one file, reported as one warning line."""

    def __init__(self, source: Path):
        self.source = source
        self.counts: Counter[str] = Counter()

    def add(self, what: str) -> None:
        self.counts[what] += 1

    def report(self) -> None:
        if self.counts:
            LOGGER.warning("warning: %s: %s", self.source, ", ".join(f"{n} {w}" for w, n in self.counts.items()))


def clean_polygons(polygons: list, problems: Problems) -> list[list[float]]:
    kept = []
    for poly in polygons:
        if len(poly) < 6 or len(poly) % 2:
            problems.add("polygon(s) with fewer than 3 points skipped")
        else:
            kept.append([float(v) for v in poly])
    return kept


def clip_box(box: np.ndarray, size: tuple[int, int], problems: Problems) -> np.ndarray | None:
    h, w = size
    clipped = np.clip(box, 0, [w, h, w, h])
    if not np.array_equal(clipped, box):
        problems.add("box(es) outside the image clipped")
    if clipped[2] - clipped[0] <= 0 or clipped[3] - clipped[1] <= 0:
        problems.add("object(s) with an empty box dropped")
        return None
    return clipped


def polygon_box(polygons: list[list[float]]) -> np.ndarray:
    pts = np.concatenate([np.asarray(p).reshape(-1, 2) for p in polygons])
    return np.array([*pts.min(0), *pts.max(0)], np.float32)


def shape_objects(size: tuple[int, int], shapes: list, boxes: list, labels: list, crowd: list) -> Objects:
    return Objects(size, shapes=shapes, boxes=np.asarray(boxes, np.float32).reshape(-1, 4),
                   labels=np.asarray(labels, np.int64), crowd=np.asarray(crowd, bool))


# ----------------------------------------------------------------------------------------- COCO
def _find_image(json_path: Path, name: str, image_dirs: tuple[Path, ...] = ()) -> Path:
    """The image ``name`` in the first of the usual folders that holds it; never outside that folder."""
    for base in (*image_dirs, json_path.parent, json_path.parent / "images", json_path.parent.parent,
                 json_path.parent.parent / "images"):
        if base.is_dir() and (base / name).is_file():
            return contained(base, name, json_path)
    first = image_dirs[0] if image_dirs else json_path.parent
    return contained(first, name, json_path)  # where it was looked for first


SIZE_SAMPLE = 500  # images whose header is compared with the sizes in the file (all of them would cost minutes)


def read_coco(json_path: Path, skip_bad: bool, names: list[str] | None = None, image_dirs: tuple[Path, ...] = ()
              ) -> tuple[list[InstanceItem], list[str]]:
    """A COCO JSON file -> items (images resolved in ``image_dirs``, beside the file or in images/) and
    category names.

    ``names`` (a checkpoint's classes) fixes the class order; otherwise the categories' in id order.
    """
    try:
        coco = json.loads(json_path.read_text())
    except (OSError, ValueError) as e:
        raise CnnkitError(f"{json_path}: not a readable COCO JSON file ({e}); fix or re-export it") from None
    check_coco(coco, json_path)
    if not coco.get("images"):
        raise CnnkitError(f"{json_path}: no images listed; a COCO file needs 'images', 'annotations', 'categories'")
    cats = sorted(coco.get("categories", []), key=lambda c: c["id"])
    names = names or [c["name"] for c in cats]
    by_name = {n: i for i, n in enumerate(names)}
    cat_index = {c["id"]: by_name.get(c["name"], -1) for c in cats}
    per_image: dict[int, list[dict]] = {im["id"]: [] for im in coco["images"]}
    for ann in coco.get("annotations", []):
        if ann.get("category_id") not in cat_index or cat_index[ann["category_id"]] < 0:
            raise CnnkitError(f"{json_path}: annotation {ann.get('id')} has unknown category {ann.get('category_id')}; "
                              f"add it to 'categories' (known: {', '.join(names)})")
        if ann.get("image_id") not in per_image:
            raise CnnkitError(f"{json_path}: annotation {ann.get('id')} names image {ann.get('image_id')}, "
                              "which 'images' does not list")
        per_image[ann["image_id"]].append(ann)
    problems, items, missing = Problems(json_path), [], []
    ids_of = {c["name"]: c["id"] for c in cats if isinstance(c["id"], int) and not isinstance(c["id"], bool)}
    origin = CocoOrigin(json_path.resolve(), tuple(ids_of.get(n) for n in names))
    sample = set(np.linspace(0, len(coco["images"]) - 1, min(SIZE_SAMPLE, len(coco["images"]))).astype(int).tolist())
    for n, im in enumerate(coco["images"]):
        path = _find_image(json_path, im["file_name"], image_dirs)
        if not path.is_file():
            missing.append(f"{path}: image listed in {json_path.name} not found; add it, or pass --skip-bad to "
                           "leave it out")
            continue
        size = (int(im["height"]), int(im["width"])) if "height" in im else image_size(path)[::-1]
        if "height" in im and n in sample and image_size(path)[::-1] != size:
            w, h = image_size(path)
            raise CnnkitError(f"{path}: the file is {w}x{h} px but {json_path.name} says {size[1]}x{size[0]} "
                              "(width x height); its annotations would be misplaced: re-export them or the image")
        items.append(InstanceItem(path, _coco_objects(per_image[im["id"]], size, cat_index, problems), origin))
    report_problems(missing, "missing image", skip_bad)
    problems.report()
    return items, names


def _coco_objects(anns: list[dict], size: tuple[int, int], cat_index: dict, problems: Problems) -> Objects:
    shapes, boxes, labels, crowd = [], [], [], []
    for ann in anns:
        seg = ann.get("segmentation")
        if isinstance(seg, list) and seg:
            seg = clean_polygons(seg, problems) or None
            if seg is None and "bbox" not in ann:
                problems.add("object(s) without a valid polygon dropped")
                continue
        elif isinstance(seg, dict):
            try:
                seg = rle_of(seg, size)
                mask_util.decode(seg)  # a corrupt RLE fails here, not in training
            except (ValueError, TypeError, OverflowError) as e:
                raise CnnkitError(f"{problems.source}: annotation {ann.get('id')}: invalid RLE segmentation ({e}); "
                                  "re-export the annotations") from None
        else:
            seg = None
        if "bbox" in ann:
            x, y, w, h = ann["bbox"]
            box = np.array([x, y, x + w, y + h], np.float32)
        elif isinstance(seg, list):
            box = polygon_box(seg)
        else:
            box = masks_to_boxes_np(mask_util.decode(seg)[None])[0]
        box = clip_box(box, size, problems)
        if box is None:
            continue
        shapes.append(seg)
        boxes.append(box)
        labels.append(cat_index[ann["category_id"]])
        crowd.append(bool(ann.get("iscrowd", 0)))
    return shape_objects(size, shapes, boxes, labels, crowd)


# ----------------------------------------------------------------------------------------- YOLO
def load_yaml_file(path: Path) -> Any:
    """A YAML file's content; an unreadable or invalid file is an error naming it."""
    try:
        return yaml.safe_load(path.read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise CnnkitError(f"{path}: not a readable YAML file ({first}); fix it") from None


def yaml_classes(names: Any, origin: Path) -> tuple[list[str], LabelIds] | None:
    """A data.yaml's ``names`` -> (names in id order, {label id: class index} where the ids are not
    0..n-1, else None); None without names. A dict's keys are the ids its label files use, so
    ``{1: cat, 2: dog}`` reads label 1 as cat, whatever index cat gets inside cnnkit."""
    if isinstance(names, list):
        return [str(n) for n in names], None
    if not isinstance(names, dict):
        return None
    keys = [k for k in names if (isinstance(k, int) and not isinstance(k, bool) and k >= 0)
            or (isinstance(k, str) and k.isdigit())]
    if len(keys) != len(names) or len({int(k) for k in keys}) != len(names):
        raise CnnkitError(f"{origin}: the keys of 'names' must be the class ids the label files use (whole numbers "
                          f"0 or more, each once), got {list(names)[:6]}; fix them")
    keyed = {int(k): str(v) for k, v in names.items()}
    ids = sorted(keyed)
    return [keyed[k] for k in ids], None if ids == list(range(len(ids))) else {k: i for i, k in enumerate(ids)}


def label_ids_note(ids: LabelIds) -> str:
    """What the found line says when label ids are not the class indices."""
    if not ids:
        return ""
    keys = sorted(ids)
    return f"; label ids {', '.join(map(str, keys[:6]))}{' ...' if len(keys) > 6 else ''} are its names' keys"


def yolo_classes(root: Path) -> tuple[list[str], LabelIds] | None:
    """Class names (and label ids, see ``yaml_classes``) from classes.txt or data.yaml in or above ``root``."""
    for path in (root / "classes.txt", root.parent / "classes.txt"):
        if path.is_file():
            return [line.strip() for line in path.read_text().splitlines() if line.strip()], None
    for path in (root / "data.yaml", root.parent / "data.yaml"):
        if path.is_file():
            spec = load_yaml_file(path)
            found = yaml_classes(spec.get("names") if isinstance(spec, dict) else None, path)
            if found is not None:
                return found
    return None


def yolo_names(root: Path) -> list[str] | None:
    found = yolo_classes(root)
    return found[0] if found else None


def read_yolo(images: list[Path], label_of: Callable[[Path], Path], names: list[str], skip_bad: bool,
              origin: Path, ids: LabelIds = None) -> list[InstanceItem]:
    """One label file per image (``label_of(image)``); an image without a label file has no objects.
    ``ids``: {label id: class index} where the labels' ids are not the indices of ``names``."""
    if not images:
        raise CnnkitError(f"{origin}: no images; put the images beside labels/")
    missing = [f"{p}: image listed by {origin} not found" for p in images if not p.is_file()]
    report_problems(missing, "missing image", skip_bad)
    items = []
    for path in images:
        if not path.is_file():
            continue
        w, h = image_size(path)
        label = label_of(path)
        lines = label.read_text().splitlines() if label.is_file() else []
        items.append(InstanceItem(path, _yolo_objects(label, lines, (h, w), names, ids)))
    return items


def yolo_orphans(images: list[Path], label_dir: Path, skip_bad: bool) -> None:
    """Label files without an image are reported (a renamed image would lose its objects silently)."""
    stems = {p.stem for p in images}
    orphans = [f"{p}: label file has no image in {images[0].parent if images else label_dir}"
               for p in sorted(label_dir.glob("*.txt")) if p.stem not in stems]
    report_problems(orphans, "label", skip_bad)


def _yolo_objects(label: Path, lines: list[str], size: tuple[int, int], names: list[str], ids: LabelIds) -> Objects:
    h, w = size
    problems = Problems(label)
    shapes, boxes, labels = [], [], []
    for n, line in enumerate(lines, 1):
        parts = line.split()
        if not parts:
            continue
        try:
            cls, values = int(parts[0]), np.array([float(v) for v in parts[1:]])
        except ValueError:
            raise CnnkitError(f"{label}:{n}: expected 'class x y ...' numbers, got {line!r}") from None
        index = cls if ids is None else ids.get(cls, -1)
        if ids is not None and index < 0:
            raise CnnkitError(f"{label}:{n}: class {cls} is not one of the ids the yaml's names give "
                              f"({', '.join(map(str, sorted(ids)))}); fix the line or add the id to names")
        if not 0 <= index < len(names):
            raise CnnkitError(f"{label}:{n}: class {cls} is not in the {len(names)} classes; fix the line "
                              "or add the name to classes.txt")
        if len(values) % 2:  # a torn line; too few points (an even count) is a polygon skipped below
            raise CnnkitError(f"{label}:{n}: {len(values)} coordinates after the class, an odd number; a line is "
                              "'class cx cy w h' (a box) or 'class x1 y1 x2 y2 x3 y3 ...' (a polygon)")
        if not np.isfinite(values).all():
            raise CnnkitError(f"{label}:{n}: a coordinate is not a finite number ({line.strip()!r}); fix the line")
        if values.size and (values.min() < 0 or values.max() > 1):
            problems.add("coordinate(s) outside 0..1 clipped to the image (YOLO coordinates are fractions of it)")
        if len(values) == 4:  # cx cy w h: a box
            cx, cy, bw, bh = values * [w, h, w, h]
            poly, box = None, np.array([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], np.float32)
        else:
            cleaned = clean_polygons([(values.reshape(-1, 2).clip(0, 1) * [w, h]).ravel().tolist()], problems)
            if not cleaned:
                continue
            poly, box = cleaned, polygon_box(cleaned)
        box = clip_box(box, size, problems)
        if box is not None:
            shapes.append(poly)
            boxes.append(box)
            labels.append(index)
    problems.report()
    return shape_objects(size, shapes, boxes, labels, [False] * len(labels))


# ------------------------------------------------------------------------ instance maps, per-object PNGs
def read_map_folder(image_dir: Path, mask_dir: Path, names: list[str], skip_bad: bool) -> list[InstanceItem]:
    """Instance maps (files in ``mask_dir``) or one PNG per object (sub-folders ``mask_dir/<stem>/``)."""
    subdirs = {p.name: p for p in mask_dir.iterdir() if p.is_dir() and not is_hidden(p.name)}
    if subdirs:
        by_stem = {p.stem: p for p in list_images(image_dir)[0]}
        missing = [f"{by_stem[s]}: no mask folder {mask_dir / s}" for s in sorted(set(by_stem) - set(subdirs))]
        report_problems(missing, "image/mask pairing", skip_bad)
        return [_object_files(by_stem[s], list_images(subdirs[s], say=False)[0])
                for s in sorted(set(by_stem) & set(subdirs))]
    images, maps = pair_by_stem(image_dir, mask_dir, skip_bad)
    items = []
    for image, id_map in zip(images, maps):
        check_id_map_file(id_map)
        w, h = image_size(image)
        if image_size(id_map) != (w, h):
            raise CnnkitError(f"{id_map}: mask is {image_size(id_map)} but its image is {(w, h)}; "
                              "masks must match their images pixel for pixel")
        items.append(InstanceItem(image, Objects((h, w), id_map=id_map, map_classes=_map_classes(id_map, names))))
    return items


def check_id_map_file(id_map: Path) -> None:
    """Refuse maps whose ids cannot be trusted: lossy files (JPEG changes ids at every edge), float maps."""
    if id_map.suffix.lower() in LOSSY:
        raise CnnkitError(f"{id_map}: an instance map saved as JPEG, whose compression changes object ids along every "
                          "edge; save instance maps as PNG (8- or 16-bit)")
    try:
        with Image.open(id_map) as im:
            mode = im.mode
    except UNREADABLE:
        return  # said, naming the file, where it is decoded
    if mode == "F":
        raise CnnkitError(f"{id_map}: a floating-point instance map; ids are whole numbers (0 background, 1, 2, ... "
                          "one per object): save it as an 8- or 16-bit PNG")


def _map_classes(id_map: Path, names: list[str]) -> dict[int, int]:
    sidecar = id_map.with_suffix(".json")
    if not sidecar.is_file():
        return {}
    try:
        table = json.loads(sidecar.read_text())
        if not isinstance(table, dict):
            raise ValueError(f"a JSON {type(table).__name__}, not an object")
        if not all(str(k).isdigit() for k in table):
            raise ValueError("its keys must be object ids, whole numbers")
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise CnnkitError(f"{sidecar}: not a JSON object of {{id: class name}} ({e}); fix it, or remove it for one "
                          "class") from None
    unknown = sorted({str(v) for v in table.values()} - set(names))
    if unknown:
        raise CnnkitError(f"{sidecar}: classes {unknown} are not in classes.txt ({', '.join(names)}); add them")
    return {int(k): names.index(str(v)) for k, v in table.items()}


def _object_files(image: Path, files: list[Path]) -> InstanceItem:
    w, h = image_size(image)
    boxes = []
    for f in files:
        with Image.open(f) as im:  # opened once: its size is checked and its box found from one decode
            if im.size != (w, h):
                raise CnnkitError(f"{f}: object mask is {im.size} but its image is {(w, h)}; they must match")
            boxes.append(masks_to_boxes_np((np.asarray(im.convert("L")) > 0)[None])[0])
    return InstanceItem(image, Objects((h, w), mask_files=files, boxes=np.asarray(boxes, np.float32).reshape(-1, 4),
                                       labels=np.zeros(len(files), np.int64), crowd=np.zeros(len(files), bool)))


def dsb_original(root: Path) -> list[InstanceItem] | None:
    """The DSB2018 download layout: ``<id>/images/<id>.png`` and ``<id>/masks/*.png``."""
    folders = [p for p in sorted(root.iterdir()) if (p / "images").is_dir() and (p / "masks").is_dir()]
    if not folders or child_dir(root, IMAGE_DIRS) is not None:
        return None
    return [_object_files(next(iter(sorted((p / "images").iterdir()))), sorted((p / "masks").glob("*.png")))
            for p in folders]


def class_names(root: Path) -> list[str]:
    return yolo_names(root) or ["object"]


__all__ = ["MASK_DIRS", "LABEL_DIRS", "read_coco", "read_yolo", "yolo_orphans", "read_map_folder", "dsb_original",
           "class_names", "yolo_classes", "yaml_classes"]

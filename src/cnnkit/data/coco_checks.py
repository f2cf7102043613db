"""The structure of a COCO annotation file, checked before anything is read from it.

Each fault is one error that names the file, the entry (``images[3]``, ``annotation 17``) and what it
needs, instead of a KeyError later. Paths in ``file_name`` must stay inside the data set: an absolute
path, or one that leaves the image folder after resolving ``..`` and symbolic links, is refused (a
crafted file could otherwise make ``cnnkit data convert`` copy any file it names, /etc/passwd say).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, TypeGuard

from cnnkit.errors import CnnkitError

SPEC = "see https://cocodataset.org/#format-data"


def _finite_numbers(values: Any) -> TypeGuard[list[Any]]:
    return isinstance(values, list) and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in values)


def check_coco(coco: Any, json_path: Path) -> None:
    """Raise CnnkitError naming the first malformed entry of a parsed COCO file."""
    where = str(json_path)
    if not isinstance(coco, dict):
        raise CnnkitError(f"{where}: a COCO file is a JSON object with 'images', 'annotations' and 'categories', "
                          f"not a {type(coco).__name__}; {SPEC}")
    for key in ("images", "annotations", "categories"):
        if key in coco and not isinstance(coco[key], list):
            raise CnnkitError(f"{where}: '{key}' must be a list, got {type(coco[key]).__name__}; {SPEC}")
    sizes = {}
    for n, im in enumerate(coco.get("images") or []):
        named = isinstance(im, dict) and isinstance(im.get("file_name"), str) and im["file_name"]
        if not named or "id" not in im:
            raise CnnkitError(f"{where}: images[{n}] needs an 'id' and a 'file_name'; got {_short(im)}")
        h, w = im.get("height"), im.get("width")
        if (h is not None or w is not None) and not (_finite_numbers([h, w]) and h > 0 and w > 0):
            raise CnnkitError(f"{where}: images[{n}] ({im['file_name']}) has height {h!r} and width {w!r}; both "
                              "must be positive pixel counts")
        if im["id"] in sizes:
            raise CnnkitError(f"{where}: images[{n}] ({im['file_name']}) repeats image id {im['id']!r}; each image "
                              "needs its own id")
        sizes[im["id"]] = (h, w)
    for n, cat in enumerate(coco.get("categories") or []):
        if not isinstance(cat, dict) or "id" not in cat or not isinstance(cat.get("name"), str):
            raise CnnkitError(f"{where}: categories[{n}] needs an 'id' and a 'name'; got {_short(cat)}")
    for n, ann in enumerate(coco.get("annotations") or []):
        _check_annotation(ann, n, sizes, where)


def _check_annotation(ann: Any, n: int, sizes: dict, where: str) -> None:
    if not isinstance(ann, dict) or "image_id" not in ann or "category_id" not in ann:
        raise CnnkitError(f"{where}: annotations[{n}] needs an 'image_id' and a 'category_id'; got {_short(ann)}")
    name = f"{where}: annotation {ann.get('id', f'[{n}]')}"
    if "bbox" in ann:
        box = ann["bbox"]
        if not (_finite_numbers(box) and len(box) == 4):
            raise CnnkitError(f"{name}: 'bbox' must be 4 finite numbers [x, y, width, height] (pixels), got {box!r}")
        if box[2] < 0 or box[3] < 0:
            raise CnnkitError(f"{name}: 'bbox' {box!r} has a negative width or height; COCO boxes are [x, y, width, "
                              "height], not corners")
    seg = ann.get("segmentation")
    if isinstance(seg, list):
        if not all(_finite_numbers(poly) for poly in seg):
            raise CnnkitError(f"{name}: 'segmentation' must be polygons, lists of finite numbers x1, y1, x2, y2, ... "
                              f"(pixels); got {_short(seg)}")
    elif isinstance(seg, dict):
        size, counts = seg.get("size"), seg.get("counts")
        if not (_finite_numbers(size) and len(size) == 2) or not isinstance(counts, (str, list)):
            raise CnnkitError(f"{name}: an RLE 'segmentation' needs 'size' [height, width] and 'counts'; "
                              f"got {_short(seg)}")
        h, w = sizes.get(ann["image_id"], (None, None))
        if h is not None and list(size) != [h, w]:
            raise CnnkitError(f"{name}: RLE size {size} differs from its image's {[h, w]} (height, width); "
                              "re-export the annotations")
    elif seg is not None:
        raise CnnkitError(f"{name}: 'segmentation' must be a list of polygons or an RLE object, got {_short(seg)}")


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def contained(base: Path, name: str, json_path: Path) -> Path:
    """``base / name``, refused when ``name`` is absolute or leads outside ``base`` (after resolving ``..``
    and symbolic links)."""
    if Path(name).is_absolute() or Path(name).drive:
        raise CnnkitError(f"{json_path}: file_name {name!r} is an absolute path; file names are relative to the "
                          "image folder, so that the data set cannot name files outside itself")
    path = base / name
    root = base.resolve()
    if not path.resolve().is_relative_to(root):
        raise CnnkitError(f"{json_path}: file_name {name!r} leads outside the data set ({root}); file names must "
                          "stay inside the image folder")
    return path

"""The ids that coco_results.json is written in.

A model trained on COCO files keeps the files' category id of each class and the files' paths in its
card (``coco_category_ids``, ``coco_files``). Its results use those category ids, and each predicted
image the id its file gives it (matched by file name and size), so that they score against the
user's own ground truth as they are. Anything else is numbered, and one log line says how.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from cnnkit.log import LOGGER
from cnnkit.meta import ModelMeta

READ_LIMIT = 300 * 2**20  # bytes: a bigger annotation file (COCO train2017's is 450 MB) is not read to predict
RESULTS = "coco_results.json"


def category_ids(meta: ModelMeta) -> list[int]:
    """The category id of each class: its source COCO file's, else class index + 1."""
    count = meta.num_classes
    ids: list[int] = list(meta.value("coco_category_ids", []))
    return [int(i) for i in ids] if len(ids) == count else list(range(1, count + 1))


def image_ids(records: list[dict], meta: ModelMeta) -> list[Any]:
    """Each record's image id: its id in the model's source COCO files where one of them lists it,
    else numbered on from the highest id there (from 1 without such files); said in one log line."""
    files = [Path(f) for f in meta.value("coco_files", list[str]())]
    by_name, read, top = _index(files)
    ids: list[Any] = []
    used: set = set()
    unmatched = 0
    for record in records:
        found = _match(record, by_name)
        if found is None or found in used:  # not listed, or the same image given twice
            unmatched += 1
            found = top + unmatched
        used.add(found)
        ids.append(found)
    LOGGER.info("%s", _said(files, read, len(records), unmatched, top))
    return ids


def _said(files: list[Path], read: list[Path], total: int, unmatched: int, top: int) -> str:
    numbered = "in the order of predictions.json (coco_images.json names each file)"
    if not files:
        return (f"{RESULTS}: image ids 1..{total} number the images {numbered}; category ids are the class "
                "indices + 1 (the model was not trained on a COCO file)")
    names = ", ".join(str(f) for f in files)
    if not read:
        return (f"{RESULTS}: category ids are those of {names}, but it could not be read here (missing, or over "
                f"{READ_LIMIT >> 20} MB): image ids 1..{total} number the images {numbered}")
    if not unmatched:
        return f"{RESULTS}: image and category ids are those of {names}"
    return (f"{RESULTS}: category ids are those of {names}; {unmatched} of {total} images are not listed there "
            f"(by file name and size), so their ids are {top + 1}..{top + unmatched} {numbered}")


def _listed(path: Path) -> list[dict] | None:
    """The 'images' of a COCO file; None where it is missing, unreadable or too big to read here."""
    try:
        if path.stat().st_size > READ_LIMIT:
            return None
        images = json.loads(path.read_text()).get("images")
    except (OSError, UnicodeDecodeError, ValueError, AttributeError):
        return None
    return images if isinstance(images, list) else None


def _index(files: list[Path]) -> tuple[dict[str, list[dict]], list[Path], int]:
    """File base name -> the images of that name in ``files``; the files read; their highest whole-number id."""
    by_name: dict[str, list[dict]] = {}
    read, top = [], 0
    for path in files:
        images = _listed(path)
        if images is None:
            continue
        read.append(path)
        for im in images:
            if isinstance(im, dict) and isinstance(im.get("file_name"), str) and isinstance(im.get("id"), (int, str)):
                by_name.setdefault(Path(im["file_name"]).name, []).append(im)
                top = max(top, im["id"]) if isinstance(im["id"], int) else top
    return by_name, read, top


def _match(record: dict, by_name: dict[str, list[dict]]) -> Any:
    """The id of the one listed image with the record's file name and size, else None."""
    path = Path(record["path"])
    width, height = record["size"]
    found = [im for im in by_name.get(path.name, [])
             if im.get("width", width) == width and im.get("height", height) == height]
    if len({im["id"] for im in found}) > 1:  # one name in several folders: the one whose file_name ends the path
        posix = path.resolve().as_posix()
        found = [im for im in found if posix.endswith("/" + im["file_name"].lstrip("./"))]
    ids = {im["id"] for im in found}
    return ids.pop() if len(ids) == 1 else None


__all__ = ["category_ids", "image_ids"]

"""Find an instance data set in any supported layout, split it, and describe its classes.

``--data`` may be: a COCO JSON file; an Ultralytics data.yaml; a folder as published by COCO
(``annotations/instances_<split>.json``) or Ultralytics (``images/<split>``, ``labels/<split>``);
a folder with ``train/``, ``val/``, ``test/`` (each any layout below) or ``train.json``...; a folder
with ``images/`` + ``masks/`` (instance maps or per-object PNG folders), ``images/`` + ``labels/``
(YOLO), or ``annotations.json`` (COCO); the DSB2018 download layout; or ``shapes[:N]``
(synthetic). Splits follow ``cnnkit.data.splits`` (``--val-split``, default 0.1, held out of train
when there is no val split).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cnnkit.data.images import probe_channels, probe_high, verify_all
from cnnkit.data.instance import InstanceItem, Objects
from cnnkit.data.instance_formats import (
    LABEL_DIRS,
    class_names,
    dsb_original,
    read_coco,
    read_map_folder,
    read_yolo,
    yolo_classes,
    yolo_orphans,
)
from cnnkit.data.instance_layouts import find_instance_layout
from cnnkit.data.request import DataRequest
from cnnkit.data.segment import IMAGE_DIRS, MASK_DIRS
from cnnkit.data.splits import Splits, resolve_splits
from cnnkit.data.synthetic import SHAPE_NAMES, is_shapes, make_scene, shapes_count
from cnnkit.data.walk import child_dir, list_images
from cnnkit.errors import CnnkitError
from cnnkit.log import LOGGER

SHAPES_SIZE = 96  # side of the synthetic scenes for the instance task (pixels)
DEFAULT_VAL_SPLIT = 0.1


@dataclass(kw_only=True)
class InstanceData(Splits[list[InstanceItem]]):
    """The splits, their classes, and what the data says of its images and annotations."""

    classes: list[str]
    channels: int
    layout: str
    high: float = 0.0  # the data set's high value for 16-bit images, 0 for 8-bit (images.probe_high)
    category_ids: list[int] | None = None  # read from COCO files: their category id of each class
    coco_files: list[str] = field(default_factory=list)  # those files, evaluation splits first


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
    """One folder (or COCO file) in any single-split layout -> items, class names, layout name."""
    if folder.is_file() and folder.suffix.lower() == ".json":
        items, found = read_coco(folder, skip_bad, names)
        return items, found, "coco"
    if not folder.is_dir():
        raise CnnkitError(f"{folder}: not a folder or a COCO .json file; see `cnnkit data check` for the layouts")
    coco = folder / "annotations.json"
    if coco.is_file():
        items, found = read_coco(coco, skip_bad, names)
        return items, found, "coco"
    image_dir = child_dir(folder, IMAGE_DIRS)
    label_dir = child_dir(folder, LABEL_DIRS)
    if image_dir is not None and label_dir is not None and any(label_dir.glob("*.txt")):
        found_names, ids = yolo_classes(folder) or ([], None)  # ids: a data.yaml's keys, where not 0..n-1
        chosen = names or found_names
        if not chosen:
            raise CnnkitError(f"{folder}: YOLO labels need class names: add classes.txt (one per line) or data.yaml")
        images = list_images(image_dir)[0]
        yolo_orphans(images, label_dir, skip_bad)
        return (read_yolo(images, lambda p: label_dir / f"{p.stem}.txt", chosen, skip_bad, image_dir, ids),
                chosen, "yolo")
    mask_dir = child_dir(folder, MASK_DIRS)
    names = names or class_names(folder)
    if image_dir is not None and mask_dir is not None:
        return read_map_folder(image_dir, mask_dir, names, skip_bad), names, "masks"
    dsb_items = dsb_original(folder)
    if dsb_items is not None:
        return dsb_items, names, "object-pngs"
    raise CnnkitError(no_layout_message(folder))


def no_layout_message(folder: Path) -> str:
    """What was looked for and what was seen, for a folder in no known layout."""
    entries = sorted(folder.iterdir())[:200] if folder.is_dir() else []
    dirs = [p.name + "/" for p in entries if p.is_dir()][:8]
    kinds = sorted({p.suffix.lower() or p.name for p in entries if p.is_file()})[:8]
    seen = ", ".join(dirs + kinds) or "nothing"
    return (f"{folder}: no instance layout found (saw {seen}); expected images/ with masks/ or labels/, "
            "annotations.json, annotations/instances_<split>.json, a data.yaml, train/ and val/ splits, "
            "or a COCO .json file")


def load_instance_data(request: DataRequest, classes: list[str] | None = None) -> InstanceData:
    """Find, read and split the data; ``classes`` (and the request's ``channels`` and ``high``) come from a
    model when evaluating. When the request scores one split (``request.split``), only that split is
    returned, as ``val``; splits follow ``cnnkit.data.splits``. ``request.decode``: decode every image now
    (`cnnkit data check`: what training would meet mid-epoch); with ``skip_bad`` alone, images whose
    files do not read are skipped."""
    names = list(classes) if classes else None
    if not request.source:
        raise CnnkitError("no data given; pass --data with a COCO .json, a folder of images/ and masks/, or 'shapes'")
    if is_shapes(request.source):
        n_train = shapes_count(request.source, default=1000, least=1)
        val = synthetic_items(max(n_train // 4, 4), request.seed + 10_000)
        train = synthetic_items(n_train, request.seed) if request.training else None
        return InstanceData(train=train, val=val, classes=list(SHAPE_NAMES), channels=3, layout="synthetic")
    root = Path(request.source)
    skip_bad = request.skip_bad
    found = find_instance_layout(root, skip_bad, lambda path, n: read_split(path, skip_bad, n))
    named, layouts = {}, set()
    for role in sorted(found.readers, key=lambda r: r != "train"):  # train first: it fixes the class order
        named[role], found_names, layout = found.readers[role](names)
        names = names or found_names
        layouts.add(layout)
    if not names:
        raise CnnkitError(f"{root}: no classes found; add class names (classes.txt or the yaml's names)")
    LOGGER.info("found: %s layout in %s (%s), %d images, %d classes (%s)", found.layout, root, found.why,
                sum(len(v) for v in named.values()), len(names), ", ".join(names[:10]) + ("..." if len(names) > 10
                                                                                         else ""))
    parts = resolve_splits(named, request, origin=root, fraction=request.fraction(DEFAULT_VAL_SPLIT),
                           names=found.labels, key=lambda i: i.image)
    if request.decode or skip_bad:
        parts = _readable(parts, skip_bad, request.decode)
    for split, items in parts.parts().items():
        if not items:
            raise CnnkitError(f"{root}: the {split} split has no images; add images")
    first = [i.image for i in (parts.train or parts.val)]
    channels = request.channels or probe_channels(first)
    high = probe_high(first) if request.high is None else request.high
    category_ids, files = coco_sources(named, root)
    return InstanceData(train=parts.train, val=parts.val, test=parts.test, plan=parts.plan, classes=names,
                        channels=channels, layout="+".join(sorted(layouts)), high=high, category_ids=category_ids,
                        coco_files=files)


def coco_sources(named: dict[str, list[InstanceItem]], root: Path) -> tuple[list[int] | None, list[str]]:
    """The category id of each class and the COCO files read, when every split came from COCO files
    (results are then written in their ids); else (None, [])."""
    roles = sorted(named, key=lambda r: r in ("train", "all"))  # evaluation splits first: predict looks there first
    found = list(dict.fromkeys(item.coco for role in roles for item in named[role]))
    origins = [o for o in found if o is not None]
    if not origins or len(origins) < len(found):
        return None, []
    fixed = origins[-1]  # train's (or the one file's): it fixed the classes
    if any(o.category_ids != fixed.category_ids for o in origins):
        LOGGER.warning("warning: %s: the COCO files give the classes different category ids; results are written "
                       "in those of %s", root, fixed.file)
    ids = [i for i in fixed.category_ids if i is not None]
    return (ids if len(ids) == len(fixed.category_ids) else None), [str(o.file) for o in origins]


def _readable(parts: Splits[list[InstanceItem]], skip_bad: bool, decode: bool) -> Splits[list[InstanceItem]]:
    """The items whose image reads (``decode``: fully); the others are all listed, then skipped with
    ``skip_bad`` or stopped at."""
    bad = verify_all([i.image for items in parts.parts().values() for i in items if isinstance(i.image, Path)],
                     skip_bad, decode=decode, stop=False)
    if bad and not skip_bad:
        raise CnnkitError(f"{len(bad)} unreadable image(s), the first: {next(iter(bad.values()))} (all listed "
                          "above); fix or remove them, or pass --skip-bad to skip them")
    return parts.map(lambda _, items: [i for i in items if not isinstance(i.image, Path) or i.image not in bad])


def boxes_without_masks(items: list[InstanceItem]) -> tuple[int, Path | None]:
    """Objects given by a box alone (a YOLO box line among polygons), and the first such image."""
    count, first = 0, None
    for item in items:
        shapes = item.objects.shapes
        n = sum(s is None for s in shapes) if shapes is not None else 0
        count += n
        first = first or (item.image if n and isinstance(item.image, Path) else None)
    return count, first

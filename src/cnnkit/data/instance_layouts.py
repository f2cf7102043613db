"""Instance data sets in the layouts their publishers ship, found without hand-made folders.

- Ultralytics YOLO: a ``data.yaml`` (``path``, ``train``, ``val``, ``test``: image folders, .txt
  lists of images, or lists of either; ``names``), labels where the image path has ``labels``
  for its last ``images`` folder (``images/train2017`` -> ``labels/train2017``); without a yaml,
  ``images/<split>/`` + ``labels/<split>/``; Roboflow's ``train/images`` + ``train/labels``.
  Without names, the 80 COCO classes (what Ultralytics assumes), said in a warning.
- COCO as published: ``annotations/instances_<split>.json`` with the images in ``<split>/``
  (``train2017/``, ``val2017/``), or in ``images/<split>/``.
- Per split folders or files (``train/``, ``val/``, ``test/``, ``train.json``, ...), each in any
  layout of ``instance_formats``; or one folder or COCO file holding everything.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

from cnnkit.data.instance import InstanceItem
from cnnkit.data.instance_formats import (
    LabelIds,
    label_ids_note,
    load_yaml_file,
    read_coco,
    read_yolo,
    yaml_classes,
    yolo_classes,
)
from cnnkit.data.splits import named_children, role_of
from cnnkit.data.walk import list_images
from cnnkit.errors import CnnkitError
from cnnkit.log import LOGGER

COCO80 = (
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat", "traffic light",
    "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat", "dog", "horse", "sheep", "cow",
    "elephant", "bear", "zebra", "giraffe", "backpack", "umbrella", "handbag", "tie", "suitcase", "frisbee",
    "skis", "snowboard", "sports ball", "kite", "baseball bat", "baseball glove", "skateboard", "surfboard",
    "tennis racket", "bottle", "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple",
    "sandwich", "orange", "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair", "couch",
    "potted plant", "bed", "dining table", "toilet", "tv", "laptop", "mouse", "remote", "keyboard", "cell phone",
    "microwave", "oven", "toaster", "sink", "refrigerator", "book", "clock", "vase", "scissors", "teddy bear",
    "hair drier", "toothbrush")

# names -> (items, names, layout): reads one split; names fix the class order (a checkpoint's, or train's)
Reader = Callable[[list[str] | None], tuple[list[InstanceItem], list[str], str]]


@dataclass
class FoundLayout:
    """A recognised layout: its name, why it was chosen, and a reader per split ('all' when unsplit)."""

    layout: str
    why: str
    readers: dict[str, Reader] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)  # split -> folder or file, for messages


def label_path(image: Path) -> Path:
    """Ultralytics' rule: the last ``images`` folder of the path becomes ``labels``, suffix .txt."""
    parts = list(image.parts)
    for i in range(len(parts) - 2, -1, -1):
        if parts[i] == "images":
            parts[i] = "labels"
            break
    return Path(*parts).with_suffix(".txt")


def _yolo_reader(images: Callable[[], list[Path]], names: list[str], skip_bad: bool, origin: Path,
                 ids: LabelIds = None) -> Reader:
    def read(fixed: list[str] | None) -> tuple[list[InstanceItem], list[str], str]:
        found = fixed or names  # a checkpoint's classes are in the order its yaml's ids gave them
        return read_yolo(images(), label_path, found, skip_bad, origin, ids), found, "yolo"
    return read


def _image_list(entry: str | list, base: Path, origin: Path) -> Callable[[], list[Path]]:
    """A data.yaml split entry -> a function listing its images (folders walked, .txt lists read)."""
    entries = entry if isinstance(entry, list) else [entry]

    def listing() -> list[Path]:
        out: list[Path] = []
        for e in entries:
            path = Path(str(e)) if Path(str(e)).is_absolute() else base / str(e)
            if not path.exists() and str(e).startswith("../"):  # Roboflow writes ../train/images beside the yaml
                path = base / str(e).lstrip("./")
            if path.is_dir():
                out += list_images(path, recursive=True)[0]
            elif path.is_file() and path.suffix == ".txt":
                lines = [ln.strip() for ln in path.read_text().splitlines() if ln.strip()]
                out += [Path(ln) if Path(ln).is_absolute() else (path.parent / ln).resolve() for ln in lines]
            else:
                raise CnnkitError(f"{origin}: split entry '{e}' is neither a folder nor a .txt list ({path} "
                                  "not found); fix the path")
        return out
    return listing


def _yaml_names(spec: dict, origin: Path) -> tuple[list[str], LabelIds, str]:
    found = yaml_classes(spec.get("names"), origin)
    if found is not None:
        names, ids = found
        return names, ids, f"{len(names)} classes from {origin.name}{label_ids_note(ids)}"
    LOGGER.warning("warning: %s gives no class names; using the 80 COCO names, as Ultralytics does", origin)
    return list(COCO80), None, "the 80 COCO classes (no names given)"


def read_data_yaml(path: Path, skip_bad: bool) -> FoundLayout:
    """An Ultralytics data.yaml: splits and class names."""
    spec = load_yaml_file(path)
    if not isinstance(spec, dict) or "train" not in spec:
        raise CnnkitError(f"{path}: a YOLO data.yaml needs 'train' (and 'val') image paths; add them")
    base = path.parent
    if spec.get("path"):
        given = Path(str(spec["path"]))
        candidates = [given] if given.is_absolute() else [base / given]
        base = next((c for c in candidates if c.is_dir()), base)  # a path from another machine: the yaml's folder
    names, ids, why = _yaml_names(spec, path)
    listed = ", ".join(k for k in ("train", "val", "test") if spec.get(k))
    found = FoundLayout("YOLO (Ultralytics)", f"{path.name} with {listed}; {why}")
    for role in ("train", "val", "test"):
        if spec.get(role):
            found.readers[role] = _yolo_reader(_image_list(spec[role], base, path), names, skip_bad, path, ids)
            found.labels[role] = str(spec[role])
    if spec.get("val") and spec.get("val") == spec.get("train"):
        LOGGER.warning("warning: %s: val is the same as train (%s), so validation scores training images; "
                       "give val its own images, or drop val to hold out --val-split", path, spec["val"])
    return found


def _yolo_split_folders(root: Path, classes: tuple[list[str], LabelIds] | None, skip_bad: bool
                        ) -> FoundLayout | None:
    """``images/<split>/`` + ``labels/<split>/`` without a yaml."""
    image_splits = named_children(root / "images")
    if not image_splits or not (root / "labels").is_dir():
        return None
    if classes is None:
        LOGGER.warning("warning: %s: no data.yaml or classes.txt; using the 80 COCO names, as Ultralytics does", root)
    found_names, ids = classes or (list(COCO80), None)
    found = FoundLayout("YOLO (Ultralytics)", f"images/<split>/ and labels/<split>/ with {len(found_names)} classes"
                        f"{label_ids_note(ids)}")
    for role, folder in image_splits.items():
        listing = _image_list(str(folder.resolve()), root, root)
        found.readers[role] = _yolo_reader(listing, found_names, skip_bad, root, ids)
        found.labels[role] = f"images/{folder.name}"
    return found


def _coco_official(root: Path, skip_bad: bool) -> FoundLayout | None:
    """``annotations/instances_<split>.json`` with images in ``<split>/`` or ``images/<split>/``."""
    files = sorted((root / "annotations").glob("instances_*.json")) if (root / "annotations").is_dir() else []
    found = FoundLayout("COCO", "annotations/instances_<split>.json")
    for f in files:
        split = f.stem[len("instances_"):]
        role = role_of(split)
        if role is None or role in found.readers:
            continue
        dirs = (root / split, root / "images" / split)

        def read(fixed, f=f, dirs=dirs):
            items, names = read_coco(f, skip_bad, fixed, image_dirs=dirs)
            return items, names, "coco"
        found.readers[role] = read
        found.labels[role] = f"annotations/{f.name}"
    return found if found.readers else None


def find_instance_layout(root: Path, skip_bad: bool, read_folder: Callable[[Path, list[str] | None], tuple]
                         ) -> FoundLayout:
    """The layout of ``--data`` (a folder, a COCO .json or a data.yaml); ``read_folder`` reads one
    folder or file in any single-split layout."""
    if root.is_file() and root.suffix.lower() in (".yaml", ".yml"):
        return read_data_yaml(root, skip_bad)
    if root.is_file():
        return FoundLayout("COCO", f"{root.name} is a JSON file", {"all": lambda n: read_folder(root, n)},
                           {"all": root.name})
    if not root.is_dir():
        raise CnnkitError(f"{root}: not found; pass a folder, a COCO .json or a data.yaml to --data")
    yamls = [p for p in sorted(root.glob("*.y*ml")) if p.suffix in (".yaml", ".yml")]
    named_yaml = next((p for p in yamls if p.stem in ("data", "dataset")), None)
    if named_yaml is not None:  # the file Ultralytics reads: its faults are said, not ignored
        return read_data_yaml(named_yaml, skip_bad)
    if len(yamls) == 1 and isinstance(spec := load_yaml_file(yamls[0]), dict) and "train" in spec:
        return read_data_yaml(yamls[0], skip_bad)
    official = _coco_official(root, skip_bad)
    if official is not None:
        return official
    yolo = _yolo_split_folders(root, yolo_classes(root), skip_bad)
    if yolo is not None:
        return yolo
    splits = named_children(root) or named_children(root, ".json", Path.is_file)
    if splits:
        found = FoundLayout("split folders", "folders " + ", ".join(p.name for p in splits.values()))
        for role, path in splits.items():
            found.readers[role] = cast(Reader, lambda n, path=path: read_folder(path, n))
            found.labels[role] = path.name
        return found
    return FoundLayout("one folder", "no split folders", {"all": lambda n: read_folder(root, n)}, {"all": root.name})

"""The layouts instance segmentation and detection read (torch-free): each detected by names alone, all read
by ``cnnkit.data.instance_data.read_instance`` (COCO, YOLO, instance maps, one PNG per object); see
``cnnkit.data.layout``. Detection reads the same files (boxes from masks where there are masks) but
declares its own list."""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from cnnkit.data.layout import MARKER, PAIRED, STRUCTURE, Layout, files_of, shapes, sub_folders
from cnnkit.data.segment_layouts import IMAGE_DIRS, MASK_DIRS
from cnnkit.data.splits import named_children
from cnnkit.data.walk import child_dir

READER = "cnnkit.data.instance_data:read_instance"
DESCRIBE = "cnnkit.data.describe:describe_instance"
YAML_NAMES = ("data.yaml", "dataset.yaml", "data.yml", "dataset.yml")


def _data_yaml(root: Path) -> str | None:
    if root.is_file():
        return f"a {root.suffix} file (YOLO data.yaml)" if root.suffix.lower() in (".yaml", ".yml") else None
    if not root.is_dir():
        return None
    named = next((n for n in YAML_NAMES if (root / n).is_file()), None)
    if named:
        return f"{named} (YOLO)"
    yamls = [p for p in root.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file()]
    if len(yamls) == 1:
        import yaml

        try:
            spec = yaml.safe_load(yamls[0].read_text())
        except (yaml.YAMLError, UnicodeDecodeError):  # not a data.yaml: its reader says why when it is asked to
            return None
        return f"{yamls[0].name} with train: (YOLO)" if isinstance(spec, dict) and "train" in spec else None
    return None


def _coco(root: Path) -> str | None:
    if root.is_file():
        return "a .json file (COCO)" if root.suffix.lower() == ".json" else None
    names, below = files_of(root)
    if "annotations.json" in names | below:
        return "annotations.json (COCO)"
    if any(n.startswith("instances_") and n.endswith(".json") for n in below):
        return "annotations/instances_<split>.json (COCO)"
    files = named_children(root, ".json", Path.is_file)
    return f"{', '.join(p.name for p in files.values())} (COCO)" if files else None


def _yolo_labels(root: Path) -> str | None:
    names, below = files_of(root)
    return "labels/ beside the images (YOLO .txt)" if "labels" in names | below else None


def _per_object(folder: Path) -> bool:
    """A masks folder of per-object PNG folders, or of instance maps with <stem>.json class tables."""
    return folder.is_dir() and any(p.is_dir() or p.suffix.lower() == ".json" for p in folder.iterdir()
                                   if not p.name.startswith("."))


def _object_masks(root: Path) -> str | None:
    if any(_per_object(d / m) for d in (root, *sub_folders(root)) for m in ("masks", "mask")):
        return "one mask per object, or instance maps with a {id: class} .json beside each"
    return None


def _dsb(root: Path) -> str | None:
    """DSB2018 as published: ``<id>/images/<id>.png`` and ``<id>/masks/*.png``, one PNG per nucleus."""
    folders = [p for p in sub_folders(root) if (p / "images").is_dir() and (p / "masks").is_dir()]
    if not folders or child_dir(root, IMAGE_DIRS) is not None or named_children(root):
        return None  # train/images + train/masks are split folders (CamVid's), not one image each
    return f"<id>/images/ and <id>/masks/ ({len(folders)} folders; one PNG per object, as DSB2018 publishes)"


def _pairs(folder: Path) -> bool:
    return child_dir(folder, IMAGE_DIRS) is not None and child_dir(folder, MASK_DIRS) is not None


def _maps(root: Path) -> str | None:
    if _pairs(root) or any(_pairs(folder) for folder in named_children(root).values()):
        return "images/ and masks/, each mask value one object (instance maps)"
    return None


WIDE_MODES = ("I;16", "I;16B", "I;16L", "I")  # PIL's 16- and 32-bit integer modes


def _wide_maps(root: Path) -> str | None:
    """Images beside 16-bit masks: more ids than a byte holds, as instance maps are saved (DSB2018's stage-1
    copy, cell-tracking sets); class masks are 8-bit. One mask header is read."""
    if _maps(root) is None:
        return None
    folders = [child_dir(d, MASK_DIRS) for d in (root, *named_children(root).values())]
    first = next((p for d in folders if d is not None for p in sorted(d.iterdir()) if p.suffix.lower() in
                  (".png", ".tif", ".tiff")), None)
    if first is None:
        return None
    try:
        with Image.open(first) as im:
            mode = im.mode
    except (OSError, ValueError):  # its reader names the unreadable file when asked to read it
        return None
    return "images/ and 16-bit masks/ (more ids than a byte holds: one id per object)" if mode in WIDE_MODES else None


SHAPES = Layout("shapes", "'shapes' or 'shapes:N': the built-in synthetic shapes", shapes, READER, MARKER, DESCRIBE)
DATA_YAML = Layout("YOLO data.yaml", "an Ultralytics data.yaml (train:, val:, names:)", _data_yaml, READER, MARKER,
                   DESCRIBE)
COCO = Layout("COCO", "a COCO .json, annotations.json, or annotations/instances_<split>.json", _coco, READER, MARKER,
              DESCRIBE)
YOLO = Layout("YOLO", "images/ and labels/ of YOLO .txt files (or per split)", _yolo_labels, READER, STRUCTURE,
              DESCRIBE)
OBJECT_MASKS = Layout("object masks", "images/ and masks/ with one folder of PNGs per image, or instance maps with "
                      "<stem>.json class tables", _object_masks, READER, STRUCTURE, DESCRIBE)
DSB2018 = Layout("DSB2018", "<id>/images/<id>.png and <id>/masks/*.png, one PNG per object", _dsb, READER, STRUCTURE,
                 DESCRIBE)
WIDE_MAPS = Layout("16-bit instance maps", "images/ and masks/ of 16-bit PNG or TIFF maps, one id per object",
                   _wide_maps, READER, STRUCTURE, DESCRIBE)
# images beside (8-bit) masks are class masks first (segment's); read as instance maps when asked (--task instance)
MAPS = Layout("instance maps", "images/ and masks/ where each mask value is one object", _maps, READER, PAIRED - 1,
              DESCRIBE)

# the last reads whatever the others do not detect, and its errors say what it expected
LAYOUTS = (SHAPES, DATA_YAML, COCO, YOLO, OBJECT_MASKS, DSB2018, WIDE_MAPS, MAPS)
DETECT_LAYOUTS = (SHAPES, DATA_YAML, COCO, YOLO, OBJECT_MASKS, DSB2018, WIDE_MAPS, MAPS)

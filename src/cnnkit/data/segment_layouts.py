"""Segmentation data sets in the layouts their publishers ship: found, and images paired with masks.

- ``ROOT/images/`` + ``ROOT/masks/`` (other names: imgs/img, labels/annotations/gt), paired by file
  stem (a mask may add _mask, _label, _L, ...); per split as ``ROOT/<split>/images``, or as
  ``ROOT/images/<split>`` (ADE20K: ``images/training``, ``annotations/training``).
- SegNet's CamVid: ``train/``, ``trainannot/``, ``val/``, ``valannot/``, ``test/``, ``testannot/``
  (also ``train_labels/``, as on Kaggle).
- Cityscapes: ``leftImg8bit/<split>/<city>/*_leftImg8bit.png`` with
  ``gtFine/<split>/<city>/*_gtFine_labelTrainIds.png`` or, failing those, ``*_gtFine_labelIds.png``
  (its 19 evaluated classes; the other ids are ignored, as in the benchmark).
- Pascal VOC: ``JPEGImages``, ``SegmentationClass``, ``ImageSets/Segmentation/{train,val}.txt``
  (also under ``VOCdevkit/VOC2012`` or ``VOC2012``).
Split names follow ``cnnkit.data.splits`` (train, val/valid/validation, test, ...).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cnnkit.data.layout import Found
from cnnkit.data.masks import ClassSpec, report_problems
from cnnkit.data.splits import named_children
from cnnkit.data.walk import child_dir, is_image_file, list_images
from cnnkit.errors import CnnkitError

IMAGE_DIRS = ("images", "imgs", "img", "image", "JPEGImages")
MASK_DIRS = ("masks", "mask", "labels", "label", "annotations", "gt", "SegmentationClass")
MASK_SUFFIXES = ("_mask", "_masks", "_label", "_labels", "_gt", "_seg", "_L", "-mask")

def _mask_stem(path: Path) -> str:
    stem = path.stem
    for suffix in MASK_SUFFIXES:
        if stem.endswith(suffix) and len(stem) > len(suffix):
            return stem[: -len(suffix)]
    return stem


def _by_stem(paths: list[Path], key) -> tuple[dict[str, Path], dict[str, list[Path]]]:
    """({stem: path} of the stems that one file has, {stem: paths} of those that several share)."""
    found: dict[str, list[Path]] = {}
    for p in paths:
        found.setdefault(key(p), []).append(p)
    return ({k: ps[0] for k, ps in found.items() if len(ps) == 1},
            {k: ps for k, ps in found.items() if len(ps) > 1})


def pair_by_stem(image_dir: Path, mask_dir: Path, skip_bad: bool) -> tuple[list[Path], list[Path]]:
    """Images and masks matched by file stem (a mask may add _mask, _label, _L, ...). Two files of one
    stem (a.JPG and a.png) are a problem named with both, never one of them dropped without a word."""
    images, clashes = _by_stem(list_images(image_dir)[0],
                               lambda p: p.stem)
    if not images and not clashes:
        raise CnnkitError(f"{image_dir}: no images; put the images (PNG, JPEG, WebP, ...) in this folder")
    masks, mask_clashes = _by_stem(list_images(mask_dir)[0],
                                   lambda p: p.stem if p.stem in images else _mask_stem(p))
    clashes.update(mask_clashes)
    problems = [f"{' and '.join(map(str, ps))}: {len(ps)} files of one stem '{k}'; images and masks pair by "
                f"stem, so rename or remove all but one" for k, ps in clashes.items()]
    no_mask = sorted(set(images) - set(masks) - set(clashes))
    no_image = sorted(set(masks) - set(images) - set(clashes))
    problems += [f"{images[s]}: image has no mask in {mask_dir} (same file stem expected)" for s in no_mask]
    problems += [f"{masks[s]}: mask has no image in {image_dir}" for s in no_image]
    report_problems(problems, "image/mask pairing", skip_bad)
    common = sorted(set(images) & set(masks))
    return [images[s] for s in common], [masks[s] for s in common]


ANNOT_SUFFIXES = ("annot", "_annot", "_labels", "_label", "_masks", "_gt")  # SegNet CamVid: trainannot/

# Cityscapes' 19 evaluated classes: (name, labelId, colour); every other labelId is ignored
CITYSCAPES = (
    ("road", 7, (128, 64, 128)), ("sidewalk", 8, (244, 35, 232)), ("building", 11, (70, 70, 70)),
    ("wall", 12, (102, 102, 156)), ("fence", 13, (190, 153, 153)), ("pole", 17, (153, 153, 153)),
    ("traffic light", 19, (250, 170, 30)), ("traffic sign", 20, (220, 220, 0)), ("vegetation", 21, (107, 142, 35)),
    ("terrain", 22, (152, 251, 152)), ("sky", 23, (70, 130, 180)), ("person", 24, (220, 20, 60)),
    ("rider", 25, (255, 0, 0)), ("car", 26, (0, 0, 142)), ("truck", 27, (0, 0, 70)), ("bus", 28, (0, 60, 100)),
    ("train", 31, (0, 80, 100)), ("motorcycle", 32, (0, 0, 230)), ("bicycle", 33, (119, 11, 32)))


@dataclass
class SegLayout:
    """What ``--data`` holds: {split: (images, masks)}, the root, and how it was recognised."""

    splits: dict[str, tuple[list[Path], list[Path]]]
    root: Path
    layout: str
    why: str
    labels: dict[str, str] = field(default_factory=dict)  # split -> folder, for messages
    spec: ClassSpec | None = None  # classes the layout itself defines (Cityscapes)
    flags: tuple[str, ...] = ()  # `cnnkit train` flags the layout needs


def voc_root(root: Path) -> Path | None:
    for cand in (root, root / "VOC2012", root / "VOCdevkit" / "VOC2012"):
        if (cand / "JPEGImages").is_dir() and (cand / "SegmentationClass").is_dir():
            return cand
    return None


def _voc(root: Path) -> SegLayout:
    sets = root / "ImageSets" / "Segmentation"
    out = {}
    for split in ("train", "val"):
        listing = sets / f"{split}.txt"
        if not listing.is_file():
            raise CnnkitError(f"{listing}: missing; the VOC layout lists each split's image ids there")
        ids = [line.split()[0] for line in listing.read_text().splitlines() if line.strip()]
        images = [next(iter(sorted((root / "JPEGImages").glob(f"{i}.*"))), root / "JPEGImages" / f"{i}.jpg")
                  for i in ids]
        masks = [root / "SegmentationClass" / f"{i}.png" for i in ids]
        missing = [str(p) for p in images + masks if not p.is_file()]
        if missing:
            raise CnnkitError(f"{listing}: {len(missing)} listed file(s) missing, the first {missing[0]}; "
                              "fix the list or add the files")
        out[split] = (images, masks)
    return SegLayout(out, root, "voc", "JPEGImages/, SegmentationClass/, ImageSets/Segmentation/*.txt",
                     {k: f"ImageSets/Segmentation/{k}.txt" for k in out})


def _cityscapes(root: Path, skip_bad: bool) -> SegLayout | None:
    if not ((root / "leftImg8bit").is_dir() and (root / "gtFine").is_dir()):
        return None
    out, labels, kinds = {}, {}, set()
    for role, folder in named_children(root / "leftImg8bit").items():
        if role == "test":  # the published test annotations are placeholders: nothing to score
            continue
        images = sorted(p for p in folder.rglob("*_leftImg8bit.*") if is_image_file(p))
        masks, problems = [], []
        for image in images:
            prefix = image.name[: image.name.rindex("_leftImg8bit")]
            gt = root / "gtFine" / folder.name / image.parent.name
            mask = next((gt / f"{prefix}_gtFine_{k}.png" for k in ("labelTrainIds", "labelIds")
                         if (gt / f"{prefix}_gtFine_{k}.png").is_file()), None)
            if mask is None:
                problems.append(f"{image}: no {gt / (prefix + '_gtFine_labelIds.png')}")
            masks.append(mask)
            kinds.add(None if mask is None else mask.stem.rsplit("_", 1)[-1])
        report_problems(problems, "image/mask pairing", skip_bad)
        kept = [i for i, m in enumerate(masks) if m is not None]
        out[role] = ([images[i] for i in kept], [m for m in masks if m is not None])
        labels[role] = f"leftImg8bit/{folder.name}"
    if not out:
        return None
    train_ids = "labelTrainIds" in kinds
    if train_ids and "labelIds" in kinds:
        raise CnnkitError(f"{root}/gtFine: some images have *_labelTrainIds.png and some only *_labelIds.png; "
                          "create the trainIds for all (cityscapesscripts) or remove them")
    names, ids, colours = zip(*CITYSCAPES)
    values = list(range(19)) if train_ids else list(ids)
    void = () if train_ids else tuple(v for v in range(256) if v not in ids and v != 255)
    spec = ClassSpec(list(names), values, list(colours), 255, void_values=void, source="Cityscapes")
    kind = "labelTrainIds" if train_ids else "labelIds"
    return SegLayout(out, root, "cityscapes", f"leftImg8bit/ and gtFine/ (*_gtFine_{kind}.png, 19 classes)", labels,
                     spec)


def _segnet(root: Path, skip_bad: bool) -> SegLayout | None:
    """SegNet's CamVid: ``<split>/`` images beside ``<split>annot/`` masks."""
    out, labels = {}, {}
    for role, folder in named_children(root).items():
        annot = annot_folder(root, folder)
        if annot is not None and child_dir(folder, IMAGE_DIRS) is None:
            out[role] = pair_by_stem(folder, annot, skip_bad)
            labels[role] = f"{folder.name}/ + {annot.name}/"
    if not out:
        return None
    return SegLayout(out, root, "segnet", "<split>/ beside <split>annot/ (SegNet CamVid; its Void is 11: pass "
                     "--ignore-index 11)", labels, flags=("--ignore-index 11",))


def _split_folders(root: Path, skip_bad: bool) -> SegLayout | None:
    """``<split>/images`` + ``<split>/masks``, or ``images/<split>`` + ``masks/<split>``."""
    out, labels = {}, {}
    for role, folder in named_children(root).items():
        image_dir, mask_dir = child_dir(folder, IMAGE_DIRS), child_dir(folder, MASK_DIRS)
        if image_dir is None or mask_dir is None:
            raise CnnkitError(f"{folder}: expected images/ and masks/ folders inside (found "
                              f"{', '.join(sorted(p.name for p in folder.iterdir())[:8]) or 'nothing'})")
        out[role] = pair_by_stem(image_dir, mask_dir, skip_bad)
        labels[role] = folder.name
    if out:
        return SegLayout(out, root, "folders", "<split>/images and <split>/masks", labels)
    image_dir, mask_dir = child_dir(root, IMAGE_DIRS), child_dir(root, MASK_DIRS)
    if image_dir is None or mask_dir is None:
        return None
    nested = named_children(image_dir)
    for role, folder in nested.items():
        masks = mask_dir / folder.name
        if masks.is_dir():
            out[role] = pair_by_stem(folder, masks, skip_bad)
            labels[role] = f"{image_dir.name}/{folder.name}"
    if out:
        return SegLayout(out, root, "folders", f"{image_dir.name}/<split> and {mask_dir.name}/<split>", labels)
    return SegLayout({"all": pair_by_stem(image_dir, mask_dir, skip_bad)}, root, "folders",
                     f"{image_dir.name}/ and {mask_dir.name}/", {"all": root.name})


def annot_folder(root: Path, folder: Path) -> Path | None:
    """SegNet's masks folder of a split folder (``train/`` -> ``trainannot/``), if there is one."""
    return next((root / (folder.name + s) for s in ANNOT_SUFFIXES if (root / (folder.name + s)).is_dir()), None)


def read_segment(source: str, *, skip_bad: bool = False, **_: Any) -> Found:
    """Every segmentation layout read into named splits of (image, mask) pairs; see the module docstring."""
    found = find_segment_layout(source, skip_bad)
    return Found(found.layout, found.root, found.why, {k: list(zip(*pair)) for k, pair in found.splits.items()},
                 found.labels, unit="image/mask pairs", flags=found.flags, extra={"spec": found.spec})


def find_segment_layout(source: str, skip_bad: bool) -> SegLayout:
    """The layout of ``--data``; see the module docstring."""
    root = Path(source)
    if not source:
        raise CnnkitError("no data given; pass --data with a folder of images/ and masks/, a VOC folder or 'shapes'")
    if not root.is_dir():
        raise CnnkitError(f"{root}: not a folder; pass a folder holding images/ and masks/ (or train/ and val/)")
    voc = voc_root(root)
    if voc is not None:
        return _voc(voc)
    for finder in (_cityscapes, _segnet, _split_folders):
        found = finder(root, skip_bad)
        if found is not None:
            return found
    seen = sorted(p.name + ("/" if p.is_dir() else "") for p in root.iterdir())[:10]
    raise CnnkitError(f"{root}: no segmentation layout found (saw {', '.join(seen) or 'nothing'}); expected "
                      "images/ and masks/ (or per split: train/images, ...), SegNet's train/ + trainannot/, "
                      "Cityscapes' leftImg8bit/ + gtFine/, or a VOC folder")

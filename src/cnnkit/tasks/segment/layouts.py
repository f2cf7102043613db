"""The layouts semantic segmentation reads (torch-free): each detected by names alone, all read by
``cnnkit.data.segment_layouts.read_segment`` (which pairs images with masks); see ``cnnkit.data.layout``."""

from __future__ import annotations

from pathlib import Path

from cnnkit.data.layout import MARKER, PAIRED, STRUCTURE, Layout, shapes
from cnnkit.data.segment_layouts import IMAGE_DIRS, MASK_DIRS, annot_folder, voc_root
from cnnkit.data.splits import named_children
from cnnkit.data.walk import child_dir, is_image_file

READER = "cnnkit.data.segment_layouts:read_segment"
DESCRIBE = "cnnkit.data.describe:describe_segment"


def _voc(root: Path) -> str | None:
    return "JPEGImages/ and SegmentationClass/ (Pascal VOC)" if root.is_dir() and voc_root(root) else None


def _cityscapes(root: Path) -> str | None:
    if not ((root / "leftImg8bit").is_dir() and (root / "gtFine").is_dir()):
        return None
    scored = [role for role in named_children(root / "leftImg8bit") if role != "test"]  # test: placeholders
    return "leftImg8bit/ and gtFine/ (Cityscapes)" if scored else None


def _segnet(root: Path) -> str | None:
    pairs = [f"{folder.name}/ + {annot.name}/" for folder in named_children(root).values()
             if (annot := annot_folder(root, folder)) is not None and child_dir(folder, IMAGE_DIRS) is None]
    return f"<split>/ beside <split>annot/ ({', '.join(pairs)})" if pairs else None


def _pairs(folder: Path) -> bool:
    """images/ beside a masks/ (labels/, gt/, ...) that holds pictures: YOLO's labels/ of .txt files are not masks."""
    masks = child_dir(folder, MASK_DIRS)
    return (child_dir(folder, IMAGE_DIRS) is not None and masks is not None
            and next((True for p in masks.rglob("*") if is_image_file(p)), False))


def _folders(root: Path) -> str | None:
    if _pairs(root):
        return (f"{child_dir(root, IMAGE_DIRS).name}/ and {child_dir(root, MASK_DIRS).name}/"  # type: ignore[union-attr]
                " (masks beside the images)")
    splits = [folder.name for folder in named_children(root).values() if _pairs(folder)]
    return f"images/ and masks/ in {', '.join(splits)}" if splits else None


LAYOUTS = (
    Layout("shapes", "'shapes' or 'shapes:N': the built-in synthetic shapes", shapes,
           "cnnkit.data.segment:read_shapes", MARKER, DESCRIBE),
    Layout("voc", "Pascal VOC: JPEGImages/, SegmentationClass/, ImageSets/Segmentation/*.txt", _voc, READER, MARKER,
           DESCRIBE),
    Layout("cityscapes", "Cityscapes: leftImg8bit/<split>/ with gtFine/<split>/", _cityscapes, READER, MARKER,
           DESCRIBE),
    Layout("segnet", "SegNet's CamVid: <split>/ beside <split>annot/", _segnet, READER, STRUCTURE, DESCRIBE),
    # last: it reads whatever the others do not detect, and its errors say what it expected
    Layout("folders", "images/ and masks/ paired by file stem (or per split: train/images, train/masks, ...)",
           _folders, READER, PAIRED, DESCRIBE),
)

"""Classification data: ImageFolder trees, CSV of path,label, IDX files and the synthetic shapes.

Small data sets are decoded once and held as uint8 ``(N, C, H, W)`` tensors; large ones stream
from disk through DataLoader workers. Every image is checked before training starts.
"""

from __future__ import annotations

import csv
import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from torch.utils.data import Dataset

from cnnkit.data import idx
from cnnkit.data.images import (
    decode_all,
    image_sizes,
    native_side,
    probe_channels,
    probe_high,
    read_image,
    verify_all,
)
from cnnkit.data.layout import Found, Layout, read_with
from cnnkit.data.request import DataRequest
from cnnkit.data.splits import Splits, named_children, resolve_splits
from cnnkit.data.splits import stratified_split as stratified_split  # re-exported: it was defined here
from cnnkit.data.synthetic import SHAPE_NAMES, is_shapes, make_classification, shapes_count
from cnnkit.data.unlabelled import as_tensor
from cnnkit.data.walk import is_annotation_folder, is_hidden, is_image_file, list_images, walk_files
from cnnkit.errors import CnnkitError
from cnnkit.log import LOGGER

CACHE_LIMIT_BYTES = 2 * 1024**3  # above this, 'auto' streams from disk instead of decoding into RAM
DEFAULT_IMGSZ = 224
DEFAULT_VAL_SPLIT = 0.2  # held out of train when there is no val split and no --val-split


@dataclass
class Split:
    """One split: labels ``(N,)`` int64 plus either decoded images or file paths."""

    labels: np.ndarray
    images: torch.Tensor | None = None  # (N, C, H, W) uint8; when set, it is what the dataset yields
    paths: list[Path] | None = None  # the files (also beside decoded images), None for arrays (IDX, shapes)

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, index: np.ndarray) -> Split:
        return Split(self.labels[index], None if self.images is None else self.images[torch.from_numpy(index)],
                     None if self.paths is None else [self.paths[i] for i in index])


@dataclass(kw_only=True)
class ClassifyData(Splits[Split]):
    """The splits, and what the data says of its images."""

    classes: list[str]
    channels: int
    imgsz: int
    high: float = 0.0  # the data set's high value for 16-bit images, 0 for 8-bit (images.probe_high)
    found: Found | None = None  # the layout read: its found line, for `cnnkit data check`


class ClassifyDataset(Dataset):
    """Yields ``(image (C, H, W) uint8, label int)``; decodes from disk when not cached."""

    def __init__(self, split: Split, channels: int, imgsz: int, transform=None, high: float = 0.0):
        self.split, self.channels, self.imgsz, self.transform = split, channels, imgsz, transform
        self.high = high  # the data set's high value for 16-bit images (see images.pil_to_array)

    def __len__(self) -> int:
        return len(self.split)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        if self.split.images is not None:
            image = self.split.images[i]
        else:
            array = read_image(cast("list[Path]", self.split.paths)[i], self.channels, self.imgsz, self.high)
            image = torch.from_numpy(array).permute(2, 0, 1)
        if self.transform is not None:
            image = self.transform(image)
        return image, int(self.split.labels[i])


def scan_image_folder(root: Path, skip_bad: bool) -> tuple[list[Path], list[str]]:
    """``root/<class>/**/<image>``: paths and their class-folder names. Hidden files are ignored."""
    class_dirs = sorted(d for d in root.iterdir() if d.is_dir() and not is_hidden(d.name))
    if not class_dirs:
        images, others = list_images(root, say=False)
        seen = (f"{len(images)} images and no folders" if images
                else ", ".join(sorted({p.suffix.lower() or p.name for p in others})[:6]) or "nothing")
        raise CnnkitError(f"{root}: no class folders (saw {seen}); expected {root}/<class name>/<image files>, "
                          "a CSV of path,label, or a layout `cnnkit data check` names")
    paths: list[Path] = []
    names: list[str] = []
    non_images: Counter[str] = Counter()  # non-image files by suffix: skipped, as every command's walk skips them
    real: dict[str, Path] = {}
    skipped = Counter(("hidden folders" if p.is_dir() else "hidden files") for p in root.iterdir()
                      if is_hidden(p.name))
    for d in class_dirs:
        same = real.setdefault(os.path.realpath(d), d)
        if same != d:  # two class folders linked to one: its images would carry two labels
            msg = f"{d} and {same} are one folder (a link): its images would belong to two classes; remove one"
            if not skip_bad:
                raise CnnkitError(msg + ", or pass --skip-bad to skip the second")
            LOGGER.warning("warning: %s; skipped %s", msg, d)
            continue
        files, hidden = walk_files(d, recursive=True)
        skipped += hidden
        images = [f for f in files if is_image_file(f)]
        non_images.update(f.suffix.lower() or f.name for f in files if not is_image_file(f))
        if not images:
            raise CnnkitError(f"{d}: class folder has no images; add images or remove the folder")
        paths += images
        names += [d.name] * len(images)
    if non_images:  # named by suffix: a .heic among the photos shows here, not silently lost
        skipped[f"non-image files ({', '.join(sorted(non_images)[:6])})"] = sum(non_images.values())
    if skipped:  # one line for the whole tree
        LOGGER.info("%s: skipped %s", root, ", ".join(f"{n} {what}" for what, n in skipped.items()))
    warn_odd_classes(root, class_dirs)
    return paths, names


IMAGE_FOLDERS = ("images", "imgs", "img", "image", "jpegimages")  # the image side of image/mask pairs


def warn_odd_classes(root: Path, class_dirs: list[Path]) -> None:
    """Images lying beside the class folders (they belong to no class), and mask folders read as a class;
    images/ beside masks/ alone are refused: as classes, a model learns to tell pictures from masks."""
    loose = [p for p in root.iterdir() if p.is_file() and is_image_file(p) and not is_hidden(p.name)]
    if loose:
        LOGGER.warning("warning: %s: %d images beside the class folders (%s, ...) belong to no class and are left "
                       "out; move them into a class folder", root, len(loose), loose[0].name)
    masks = [d.name for d in class_dirs if is_annotation_folder(d.name)]
    pictures = [d.name for d in class_dirs if d.name.lower() in IMAGE_FOLDERS]
    if masks and pictures and len(masks) + len(pictures) == len(class_dirs):  # images/ + masks/ and nothing else
        raise CnnkitError(f"{root}: {pictures[0]}/ beside {masks[0]}/ is a segmentation or instance layout, not "
                          "folders of classes; train segment or instance on it (`cnnkit data check` says which), "
                          "or put each class's images in a folder of its own")
    if masks:
        LOGGER.warning("warning: %s: '%s' is read as a class; if it holds masks or labels, this is not a "
                       "class-folder layout (`cnnkit data check %s` says what it is)", root, masks[0], root)


def read_csv(path: Path) -> tuple[list[Path], list[str]]:
    """Rows of ``path,label`` (a header row is optional); paths are relative to the CSV's folder."""
    try:
        with path.open(newline="", encoding="utf-8-sig") as f:
            rows = [r for r in csv.reader(f) if r and not r[0].startswith("#")]
    except (UnicodeDecodeError, csv.Error) as e:
        raise CnnkitError(f"{path}: not a readable CSV text file ({e}); save it as UTF-8 text, one path,label "
                          "row per image") from None
    if rows and [c.strip().lower() for c in rows[0][:2]] in (["path", "label"], ["file", "label"], ["image", "label"]):
        rows = rows[1:]
    if not rows:
        raise CnnkitError(f"{path}: no rows; expected lines of path,label")
    bad = next((i for i, r in enumerate(rows) if len(r) < 2 or not r[1].strip() or not r[0].strip()), None)
    if bad is not None:
        raise CnnkitError(f"{path}: row {bad + 1} {rows[bad]} has no path or no label; expected path,label")
    return [(path.parent / r[0].strip()) for r in rows], [r[1].strip() for r in rows]


def label_indices(names: list[str], classes: list[str] | None, origin: Path) -> tuple[np.ndarray, list[str]]:
    """Map label strings to indices. Integers index ``classes``; names must be among them."""
    if classes is None:
        if all(n.lstrip("-").isdigit() for n in names):
            ints = [int(n) for n in names]
            classes_file = (origin.parent if origin.is_file() else origin) / "classes.txt"
            if classes_file.is_file():  # one class name per line, in index order
                classes = [line.strip() for line in classes_file.read_text().splitlines() if line.strip()]
            else:
                classes = [str(i) for i in range(max(ints) + 1)]
        else:
            classes = sorted(set(names))
    lookup = {c: i for i, c in enumerate(classes)}
    out = np.empty(len(names), np.int64)
    for i, n in enumerate(names):
        if n in lookup:
            out[i] = lookup[n]
        elif n.lstrip("-").isdigit() and 0 <= int(n) < len(classes):
            out[i] = int(n)
        elif n.lower() == "images" or is_annotation_folder(n):  # images/ + masks/ or labels/ read as classes
            raise CnnkitError(f"{origin}: a folder '{n}' where class folders were expected: this looks like "
                              "segmentation or detection data (images/ with masks/ or labels/), and the model is a "
                              "classifier; score it on class folders, or use a model of that data's task")
        else:
            raise CnnkitError(f"{origin}: label '{n}' (row/item {i + 1}) is not one of the {len(classes)} classes "
                              f"(0..{len(classes) - 1}: {', '.join(classes[:5])}...); fix the label")
    return out, classes


def _among_model_classes(raw: dict, classes: list[str], origin: Path) -> None:
    """A model's data holds its classes (or their indices): another class set is named as such, not as a
    bad label."""
    names = sorted({str(n) for _, split_names in raw.values() for n in split_names})
    unknown = [n for n in names if n not in classes and not (n.isdigit() and int(n) < len(classes))]
    if not unknown or any(n.lower() == "images" or is_annotation_folder(n) for n in unknown):
        return  # the same classes, or segmentation data: label_indices says which

    def shown(items: list[str]) -> str:
        return ", ".join(items[:8]) + (f", ... ({len(items)})" if len(items) > 8 else "")
    raise CnnkitError(f"{origin}: the data's classes ({shown(names)}) differ from the model's ({shown(classes)}): "
                      f"{shown(unknown)} not among the model's; score the model on data of the classes it learned")


def _synthetic(spec: str, seed: int) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], list[str]]:
    """'shapes' or 'shapes:N' (N training scenes, N/4 validation scenes, 64 px)."""
    n_train = shapes_count(spec, default=2000, least=8)
    train = make_classification(n_train, seed=seed)
    val = make_classification(max(n_train // 4, 8), seed=seed + 10_000)
    return {"train": train, "val": val}, list(SHAPE_NAMES)


def read_classify(source: str, *, seed: int = 0, split: str | None = None, skip_bad: bool = False,
                  **_: Any) -> Found:
    """Locate the splits of ``source``: {split: (paths or (N,H,W,C) array, label strings or ints)}; the
    classes when the layout names them (IDX, shapes). Every classify layout reads through here. ``split``:
    the split scored (see ``cnnkit.data.request``), None when training."""
    if is_shapes(source):
        raw, classes = _synthetic(source, seed)
        return Found("synthetic", Path(source), "the synthetic shapes", raw, classes=classes, form="")
    val_only = split in ("auto", "val")  # scoring the val split needs no other
    path = Path(source)
    if not source:
        raise CnnkitError("no data given; pass --data with a folder, a CSV of path,label, an IDX folder or 'shapes'")
    if not path.exists():
        raise CnnkitError(f"{path}: not found; pass an existing folder or CSV file to --data")
    if idx.is_idx_folder(path):
        raw = {s: idx.load_idx_split(path, s) for s in (("val",) if val_only else ("train", "val"))}
        n_classes = int(max(lab.max() for _, lab in raw.values())) + 1
        return Found("IDX", path, "train-/t10k- files; t10k validates, as published for MNIST", raw,
                     classes=idx.idx_class_names(path, n_classes))
    if path.is_file():
        if path.suffix.lower() != ".csv":
            raise CnnkitError(f"{path}: unsupported data file; pass a folder, a .csv of path,label, or an IDX folder")
        return Found("CSV", path, "path,label rows", {"all": read_csv(path)}, form="found: CSV of path,label in {root}")
    named = named_children(path)
    if "train" in named or "val" in named or "test" in named:
        wanted = {"val": named["val"]} if val_only and "val" in named else named
        raw = {role: scan_image_folder(folder, skip_bad) for role, folder in wanted.items()}
    else:
        raw = {"all": scan_image_folder(path, skip_bad)}
    why = (", ".join(f"{p.name}/" for p in named.values()) + " of class folders" if named
           else "one folder per class, no split folders")
    return Found("ImageFolder", path, why, raw)


def _native_size(paths: list[Path]) -> int:
    """The images' own side when the first 64 share one size up to 512 px, else DEFAULT_IMGSZ."""
    return native_side(image_sizes(paths), 512, DEFAULT_IMGSZ, "training")


def _to_split(items, labels: np.ndarray, channels: int, imgsz: int, cache: str, skip_bad: bool, high: float,
              decode: bool = False) -> tuple[Split, list[str]]:
    """The split decoded (or checked, to stream; ``decode``: checked by a full decode), and the unreadable
    files' errors, listed but not stopped at: the caller stops once every split is listed."""
    if isinstance(items, np.ndarray):  # already decoded (N, H, W, C)
        return Split(labels, images=as_tensor(items, channels, imgsz)), []
    if cache == "ram" or (cache == "auto" and len(items) * channels * imgsz * imgsz <= CACHE_LIMIT_BYTES):
        arrays, errors = decode_all(items, channels, imgsz, skip_bad, high=high, stop=False)
        keep = np.array([i for i, a in enumerate(arrays) if a is not None], dtype=np.int64)
        stacked = np.stack([arrays[i] for i in keep]) if len(keep) else np.zeros((0, imgsz, imgsz, channels), np.uint8)
        # the paths stay beside the decoded images: what the model trained on is described from the files
        return Split(labels[keep], images=torch.from_numpy(stacked).permute(0, 3, 1, 2).contiguous(),
                     paths=[items[i] for i in keep]), errors
    bad = verify_all(items, skip_bad, decode=decode, stop=False)
    keep = np.array([i for i, p in enumerate(items) if p not in bad], dtype=np.int64)
    return Split(labels[keep], paths=[items[i] for i in keep]), list(bad.values())


def load_classify_data(request: DataRequest, classes: list[str] | None = None,
                       layouts: Sequence[Layout] = ()) -> ClassifyData:
    """Find, check and (if small) decode a classification data set.

    ``classes`` (and the request's ``channels`` and ``high``) come from a model when evaluating;
    otherwise they are found in the data. When the request scores one split (``request.split``; see
    ``cnnkit.data.splits``) only that split is loaded, as ``val``. ``request.decode``: decode every
    image fully even when not caching (`cnnkit data check`: what training would meet mid-epoch, found now).
    ``layouts``: the task's (``cnnkit.data.layout``): the first that detects the source reads it.
    """
    layout = read_with(layouts, request.source, "cnnkit.data.classify:read_classify", seed=request.seed,
                       split=request.split, skip_bad=request.skip_bad)
    if layout.line():
        LOGGER.info("%s", layout.line())
    raw, found_classes, origin = layout.splits, layout.classes, layout.root
    if classes and not found_classes:
        _among_model_classes(raw, classes, origin)
    classes = classes or found_classes
    if not classes:  # the classes of every split: a class only val/ or test/ holds is still a class
        names = [str(n) for _, split_names in raw.values() for n in split_names]
        classes = label_indices(names, None, origin)[1]
    splits = {}
    for name, (items, names) in raw.items():
        labels = names if isinstance(names, np.ndarray) else label_indices(names, classes, origin)[0]
        if isinstance(names, np.ndarray) and len(labels) and (labels.max() >= len(classes) or labels.min() < 0):
            raise CnnkitError(f"{origin}: label {int(labels.max())} is out of range for {len(classes)} classes")
        splits[name] = (items, labels)
    parts = _assign(splits, request, origin)
    first_items = next(iter(parts.parts().values()))[0]
    channels, imgsz = request.channels, request.imgsz
    if isinstance(first_items, np.ndarray):
        channels = channels or first_items.shape[-1]
        imgsz = imgsz or first_items.shape[1]
    else:
        channels = channels or probe_channels(first_items)
        imgsz = imgsz or _native_size(first_items)
    high = request.high
    high = probe_high(first_items) if high is None and not isinstance(first_items, np.ndarray) else (high or 0.0)
    # every split is checked before any stops: all unreadable files are listed, in train, val and test alike
    bad: list[str] = []

    def checked(_: str, part: tuple) -> Split:
        items, labels = part
        split, errors = _to_split(items, labels, channels, imgsz, request.cache, request.skip_bad, high,
                                  request.decode)
        bad.extend(errors)
        return split

    out = parts.map(checked)
    if bad and not request.skip_bad:
        raise CnnkitError(f"{len(bad)} unreadable image(s), the first: {bad[0]} (all listed above); fix or remove "
                          "them, or pass --skip-bad to skip them")
    if len(classes) < 2 and request.training:
        raise CnnkitError(f"{origin}: one class ({classes[0] if classes else 'none'}) found; a classifier needs two "
                          "or more. Put each class's images in its own folder, or pass a CSV of path,label to --data")
    for k, split in out.parts().items():
        if len(split) == 0:
            raise CnnkitError(f"{origin}: the {k} split has no usable images; add images or fix --val-split")
    if request.training and out.train is not None and not request.whole_classes:
        _warn_unlearnable(out.train.labels, classes, origin, held_out="all" in raw)
    return ClassifyData(train=out.train, val=out.val, test=out.test, plan=out.plan, classes=list(classes),
                        channels=channels, imgsz=imgsz, high=high, found=layout)


def _warn_unlearnable(labels: np.ndarray, classes: list[str], origin: Path, held_out: bool) -> None:
    """Classes without a training image (only val/ or test/ holds them, or the hold-out took them all)."""
    counts = np.bincount(labels, minlength=len(classes))
    missing = [c for c, n in zip(classes, counts) if n == 0]
    if not missing:
        return
    how = ("; the hold-out took all their images: with --val-group, a group that is a whole class (a person, "
           "a patient) belongs in every split, or give a val/ folder") if held_out else ""
    LOGGER.warning("warning: %s: class(es) %s%s have no training images; the model cannot learn them%s", origin,
                   ", ".join(missing[:8]), " ..." if len(missing) > 8 else "", how)


def _assign(splits: dict[str, tuple], request: DataRequest, origin: Path) -> Splits[tuple]:
    """Train, val (and test) by ``cnnkit.data.splits``' rule; a held-out val is stratified by class, or
    made of whole groups with ``--val-group``."""
    refs = {k: [(k, i) for i in range(len(labels))] for k, (_, labels) in splits.items()}

    def key(ref: tuple) -> str:
        items = splits[ref[0]][0]
        return str(ref) if isinstance(items, np.ndarray) else str(items[ref[1]])

    parts = resolve_splits(refs, request, origin=origin, fraction=request.fraction(DEFAULT_VAL_SPLIT), key=key,
                           strata=lambda ref: splits[ref[0]][1][ref[1]])
    return parts.map(lambda _, rs: _gather(splits, rs))


def _gather(splits: dict[str, tuple], refs: list[tuple[str, int]]) -> tuple:
    """(items, labels) of the referenced entries: paths as a list, decoded images as one array."""
    labels = np.array([splits[k][1][i] for k, i in refs], np.int64)
    if refs and isinstance(splits[refs[0][0]][0], np.ndarray):
        return np.stack([splits[k][0][i] for k, i in refs]), labels
    return [splits[k][0][i] for k, i in refs], labels

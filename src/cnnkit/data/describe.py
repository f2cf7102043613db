"""What ``cnnkit data check`` says about the data a layout reads, beyond its found line: one describer per
reader, named by the task's layouts (``Layout.describe``), and :func:`describe_found` for a layout without one.

A describer reads the data exactly as training would (through the task's loader and its layouts) and
returns a :class:`Report`: its lines and the objects they came from.
"""

from __future__ import annotations

import shlex
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np
from PIL import Image

from cnnkit.data.images import UNREADABLE
from cnnkit.data.layout import Found, Layout, choose
from cnnkit.data.request import DataRequest
from cnnkit.errors import CnnkitError

if TYPE_CHECKING:
    from cnnkit.data.classify import Split
    from cnnkit.data.instance import InstanceItem
    from cnnkit.data.masks import MaskInfo
    from cnnkit.data.segment import RawSplit

SAMPLE = 200  # images whose headers are read for sizes and channels
HASH_LIMIT = 2000  # images per split hashed for the near-duplicate count
NEAR = 6  # difference-hash bits (of 64) within which two images count as near-duplicates
VOID_NAMES = ("unlabelled", "unlabeled", "void", "ignore", "dontcare")  # class names that mean "not a class"
THUMB = 12.0  # mean grey-level gap of their 16x16 thumbnails within which the match is confirmed (0..255)


@dataclass(frozen=True)
class Reading:
    """How ``cnnkit data check`` reads the data: the data-reading flags of ``cnnkit train``, applied as
    training applies them and repeated in the suggested command."""

    val_split: float = 0.0
    seed: int = 0
    group: str = ""
    skip_bad: bool = False
    binary: bool = False  # segment: --binary
    ignore_index: int | None = None  # segment: --ignore-index (None: not given, 255)
    classes_file: str = ""  # segment: --classes-file

    def flags(self) -> list[str]:
        """The flags given, as ``cnnkit train`` takes them."""
        return [f for f in (f"--val-split {self.val_split}" if self.val_split else "",
                            f"--seed {self.seed}" if self.seed else "",
                            f"--val-group '{self.group}'" if self.group else "", "--skip-bad" if self.skip_bad else "",
                            "--binary" if self.binary else "",
                            f"--ignore-index {self.ignore_index}" if self.ignore_index is not None else "",
                            f"--classes-file {shlex.quote(self.classes_file)}" if self.classes_file else "") if f]

    def request(self, source: str, **changes: Any) -> DataRequest:
        """The loaders' request: training's split, every image decoded now, nothing cached."""
        return DataRequest(source, val_split=self.val_split, seed=self.seed, val_group=self.group, cache="none",
                           skip_bad=self.skip_bad, decode=True, **changes)


@dataclass(frozen=True)
class Report:
    """A describer's answer: its lines, the layout read (its found line), whether the objects have masks
    (instance data; None where that means nothing) and `cnnkit train` flags the data calls for."""

    lines: list[str]
    found: Found | None = None
    masks: bool | None = None
    flags: tuple[str, ...] = ()


def image_summary(paths: list) -> str:
    """Sizes, channels and bit depths of up to SAMPLE images (headers only)."""
    paths = [p for p in paths if isinstance(p, Path)]
    if not paths:
        return "images: decoded in memory"
    pick = [paths[int(i)] for i in np.linspace(0, len(paths) - 1, min(SAMPLE, len(paths))).astype(int)]
    sizes: Counter[tuple[int, int]] = Counter()
    modes: Counter[str] = Counter()
    pages = 0
    for p in pick:
        try:
            with Image.open(p) as im:
                sizes[im.size] += 1
                modes[im.mode] += 1
                pages += getattr(im, "n_frames", 1) > 1
        except UNREADABLE:
            modes["unreadable"] += 1
    common = ", ".join(f"{w}x{h} ({n})" for (w, h), n in sizes.most_common(3))
    text = f"images: {len(pick)} of {len(paths)} read: sizes {common}{' ...' if len(sizes) > 3 else ''}; modes " + (
        ", ".join(f"{m} ({n})" for m, n in modes.most_common()))
    return text + (f"; {pages} with several pages (only the first is read)" if pages else "")


def dhash(path: Path) -> tuple[np.ndarray, np.ndarray] | None:
    """64-bit difference hash (grey 9x8, each pixel brighter than its right neighbour), as 64 bools, and a
    16x16 grey thumbnail that confirms a match."""
    try:
        with Image.open(path) as im:
            grey = im.convert("L")
            small = np.asarray(grey.resize((9, 8), Image.BILINEAR), np.int16)
            thumb = np.asarray(grey.resize((16, 16), Image.BILINEAR), np.float32).ravel()
    except UNREADABLE:
        return None
    return (small[:, 1:] > small[:, :-1]).ravel(), thumb


def near_duplicates(train: list, val: list) -> str:
    """How many validation images look like a training image (a perceptual hash within NEAR bits, and
    thumbnails within THUMB grey levels: aligned faces or cells share a hash without being one picture):
    frames of one video, or one slide photographed twice, make validation flatter than new data."""
    def hashes(items: list) -> tuple[list, np.ndarray, np.ndarray]:
        paths = [p for p in items if isinstance(p, Path)]
        pick = [paths[int(i)] for i in np.linspace(0, len(paths) - 1, min(HASH_LIMIT, len(paths))).astype(int)] \
            if paths else []
        found = [(p, h) for p in pick if (h := dhash(p)) is not None]
        return ([p for p, _ in found], np.array([h[0] for _, h in found], np.float32).reshape(-1, 64),
                np.array([h[1] for _, h in found], np.float32).reshape(-1, 256))

    train_paths, a, a_thumbs = hashes(train)
    val_paths, b, b_thumbs = hashes(val)
    if not len(a) or not len(b):
        return "near-duplicates: not checked (images decoded in memory)"
    distance = b @ (1 - a).T + (1 - b) @ a.T  # Hamming distance of every val/train pair
    twins: dict[int, int] = {}
    for i in np.flatnonzero(distance.min(1) <= NEAR):
        candidates = np.flatnonzero(distance[i] <= NEAR)
        gaps = np.abs(a_thumbs[candidates] - b_thumbs[i]).mean(1)
        if gaps.min() <= THUMB:
            twins[int(i)] = int(candidates[gaps.argmin()])
    if not twins:
        return f"near-duplicates: none of {len(b)} val images looks like a training image"
    i, j = next(iter(twins.items()))
    return (f"near-duplicates: {len(twins)} of {len(b)} val images look like a training image (e.g. {val_paths[i]} ~ "
            f"{train_paths[j]}); validation will flatter the model: hold out whole groups "
            "(--val-group) or give a val/ folder of other footage")


def describe_classify(source: str, reading: Reading, layouts: Sequence[Layout]) -> Report:
    from cnnkit.data.classify import load_classify_data

    data = load_classify_data(reading.request(source, imgsz=32), layouts=layouts)
    out = []
    for name in ("train", "val", "test"):
        split = getattr(data, name)
        if split is not None:
            counts = np.bincount(split.labels, minlength=len(data.classes))
            per_class = ", ".join(f"{c} {n}" for c, n in zip(data.classes[:20], counts[:20]))
            out.append(f"{name}: {len(split)} images; per class {per_class}{' ...' if len(data.classes) > 20 else ''}")
    out.append(f"classes: {len(data.classes)}; channels: {data.channels}")
    out.append(image_summary((data.train.paths or []) if data.train is not None else []))
    train = cast("Split", data.train)  # loaded for training: set
    out.append(near_duplicates(train.paths or [], data.val.paths or []))
    return Report(out, data.found)


def describe_identities(source: str, reading: Reading, layouts: Sequence[Layout]) -> Report:
    """Recognition's data: identities (classes) held out whole for validation, images per identity; an identity
    with one image is a problem (it gives no pair)."""
    from cnnkit.data.classify import load_classify_data

    data = load_classify_data(reading.request(source, imgsz=32, whole_classes=True), layouts=layouts)
    out, lone = [], []
    for name in ("train", "val", "test"):
        split = getattr(data, name)
        if split is None:
            continue
        counts = np.bincount(split.labels, minlength=len(data.classes))
        present = counts[counts > 0]
        lone += [c for c, n in zip(data.classes, counts) if n == 1]
        out.append(f"{name}: {len(split)} images of {len(present)} identities ({int(present.min())} to "
                   f"{int(present.max())} images each)")
    out.append(f"identities: {len(data.classes)}; channels: {data.channels}")
    out.append(image_summary((data.train.paths or []) if data.train is not None else []))
    held = len(np.unique(data.val.labels))
    if held < 2:
        raise CnnkitError(f"{source}: validation holds out {held} identity; open-set figures compare identities, so "
                          "it needs 2 or more: raise --val-split, or add identities")
    if lone:
        raise CnnkitError(f"{source}: identity '{lone[0]}' has one image"
                          + (f" (and {len(lone) - 1} more)" if len(lone) > 1 else "")
                          + "; recognition learns and is scored on pairs: add a second image of each, or remove them")
    return Report(out, data.found)


def describe_segment(source: str, reading: Reading, layouts: Sequence[Layout]) -> Report:
    from cnnkit.data.masks import class_pixel_stats
    from cnnkit.data.segment import load_segment_data

    ignore = 255 if reading.ignore_index is None else reading.ignore_index
    data = load_segment_data(reading.request(source), binary=reading.binary, ignore_index=ignore,
                             classes_file=reading.classes_file, layouts=layouts)
    train = cast("RawSplit", data.train)  # loaded for training: set, with its infos
    infos = cast("list[MaskInfo]", train.infos)
    pixels, _ = class_pixel_stats(infos, data.spec)
    share = pixels / max(pixels.sum(), 1)
    values = sorted({v for info in infos for v in info.counts})
    out = [f"classes ({len(data.spec.names)}, from {data.spec.source or 'the mask values'}; ignore index "
           f"{data.spec.ignore_value}): " + ", ".join(f"{n} {s:.1%}" for n, s in zip(data.spec.names[:24], share)),
           f"mask values in train: {values[:24]}{' ...' if len(values) > 24 else ''}; channels: {data.channels}",
           image_summary(train.images), near_duplicates(train.images, data.val.images)]
    found = data.found
    flags = tuple(found.flags) if found is not None and reading.ignore_index is None else ()
    void = next(((n, v) for n, v in zip(data.spec.names, data.spec.values)
                 if n.lower().replace("-", "").replace(" ", "") in VOID_NAMES), None)
    if reading.ignore_index is None and void is not None and not any(f.startswith("--ignore-index") for f in flags):
        out.append(f"class {void[1]} is named '{void[0]}': pass --ignore-index {void[1]} to leave its pixels out of "
                   "the loss and the metrics, as CamVid's benchmarks do")
        flags += (f"--ignore-index {void[1]}",)
    return Report(out, found, flags=flags)


def describe_instance(source: str, reading: Reading, layouts: Sequence[Layout]) -> Report:
    from cnnkit.data.instance_data import boxes_without_masks, load_instance_data

    data = load_instance_data(reading.request(source), layouts=layouts)
    out = []
    for name in ("train", "val", "test"):
        items = getattr(data, name)
        if items is None:
            continue
        per_image: list[int] = []
        per_class: Counter[int] = Counter()
        crowd = 0
        for item in items:
            labels = _labels(item.objects)
            if item.objects.crowd is not None:  # COCO's regions to ignore: not objects
                crowd += int(item.objects.crowd.sum())
                labels = labels[~item.objects.crowd]
            per_image.append(len(labels))
            per_class.update(int(v) for v in labels)
        n = np.array(per_image)
        out.append(f"{name}: {len(items)} images, {int(n.sum())} objects (per image min {n.min()}, median "
                   f"{int(np.median(n))}, max {n.max()}; {int((n == 0).sum())} without objects); per class " +
                   ", ".join(f"{c} {per_class[i]}" for i, c in enumerate(data.classes[:20])) +
                   (f"; {crowd} crowd regions (iscrowd 1: not trained on, ignored in scoring)" if crowd else ""))
    masks = any(item.objects.has_masks for item in (data.train or data.val)[:50])
    boxes, first = boxes_without_masks((data.train or []) + data.val)
    mixed = f" ({boxes} objects have a box but no mask, e.g. in {first}: their boxes serve as masks)" if masks and \
        boxes else ""
    out.append(f"annotations: {'masks' + mixed if masks else 'boxes only'}; channels: {data.channels}")
    out.append(image_summary([i.image for i in (data.train or data.val)]))
    train = cast("list[InstanceItem]", data.train)  # loaded for training: set
    out.append(near_duplicates([i.image for i in train], [i.image for i in data.val]))
    sides = sorted(max(i.objects.size) for i in train[:200])
    crop = min(512, max(64, 32 * int(np.ceil(sides[len(sides) // 2] / 32)))) if sides else 512
    return Report(out, data.found, masks, (f"--imgsz {crop}",))  # a crop near the images' own size, at most 512


def _labels(objects) -> np.ndarray:
    if objects.labels is not None:
        return objects.labels
    from cnnkit.data.instance import read_id_map

    ids = read_id_map(objects.id_map) if isinstance(objects.id_map, Path) else objects.id_map
    return np.array([objects.map_classes.get(int(i), 0) for i in np.unique(ids) if i > 0], np.int64)




def describe_found(source: str, reading: Reading, layouts: Sequence[Layout]) -> Report:
    """What any layout's reader found (a layout with no describer of its own): the items per split and the
    images' sizes."""
    found = choose(layouts, Path(source))[0].read(source, seed=reading.seed, skip_bad=reading.skip_bad)
    lines = [f"{split}: {len(items)} {found.unit or 'items'}" for split, items in found.splits.items()]
    every = [item for items in found.splits.values() for item in items]
    return Report([*lines, image_summary(every)], found)

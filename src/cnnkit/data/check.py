"""``cnnkit data check DATA``: what a data set holds, read exactly as training would read it.

It names the layout found and why, the splits, the classes with their counts, image sizes,
channels and bit depths, mask values or annotation statistics, every problem with its file, and
the command to train. A data set training would refuse gives exit code 2, with the reason.
"""

from __future__ import annotations

import logging
import shlex
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np
from PIL import Image

from cnnkit.data.images import UNREADABLE
from cnnkit.data.request import DataRequest
from cnnkit.data.synthetic import is_shapes
from cnnkit.errors import CnnkitError
from cnnkit.log import LOGGER

if TYPE_CHECKING:
    from cnnkit.data.classify import Split
    from cnnkit.data.instance import InstanceItem
    from cnnkit.data.masks import MaskInfo
    from cnnkit.data.segment import RawSplit

SAMPLE = 200  # images whose headers are read for sizes and channels
HASH_LIMIT = 2000  # images per split hashed for the near-duplicate count
NEAR = 6  # difference-hash bits (of 64) within which two images count as near-duplicates
MODELS = {"classify": "resnet18", "segment": "unet_resnet18", "instance": "maskrcnn_resnet18",
          "detect": "fasterrcnn_resnet18"}


def guess_task(source: str) -> tuple[str, str]:
    """(task, why) from the layout's shape alone; ``--task`` overrides it."""
    root = Path(source)
    if is_shapes(source):
        return "classify", "the synthetic shapes (pass --task segment or instance for the others)"
    if root.is_file():
        kinds = {".csv": "classify", ".json": "instance", ".yaml": "instance", ".yml": "instance"}
        if root.suffix.lower() in kinds:
            return kinds[root.suffix.lower()], f"a {root.suffix} file"
        raise CnnkitError(f"{root}: not a data set file; pass a folder, a .csv, a COCO .json or a data.yaml")
    if not root.is_dir():
        raise CnnkitError(f"{root}: not found; pass an existing folder or file")
    folders = [root, *(d for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))]
    names = {p.name.lower() for p in root.iterdir()}
    below = {p.name.lower() for d in folders[1:] for p in d.iterdir()}
    if names & {"data.yaml", "annotations.json"} or "labels" in names | below or below & {"annotations.json"} or any(
            n.startswith("instances_") for n in below):
        return "instance", "annotations for objects (YOLO labels, COCO JSON)"
    if any(_instance_masks(d / m) for d in folders for m in ("masks", "mask")):
        return "instance", "one mask per object, or instance maps with a {id: class} file beside each"
    if names & {"leftimg8bit", "jpegimages", "voc2012", "vocdevkit"} or {n + "annot" for n in names} & names or (
            {"masks", "annotations", "gt"} & (names | below)):
        return "segment", "masks beside the images (pass --task instance if each mask value is one object)"
    from cnnkit.data import idx

    if idx.is_idx_folder(root):
        return "classify", "MNIST-style IDX files"
    return "classify", "folders of images, one per class"


def _instance_masks(folder: Path) -> bool:
    """A masks folder of per-object PNG folders, or of instance maps with <stem>.json class tables."""
    if not folder.is_dir():
        return False
    return any(p.is_dir() or p.suffix.lower() == ".json" for p in folder.iterdir() if not p.name.startswith("."))


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
                            f"--val-group '{self.group}'" if self.group else "", "--skip-bad" if self.skip_bad else "",
                            "--binary" if self.binary else "",
                            f"--ignore-index {self.ignore_index}" if self.ignore_index is not None else "",
                            f"--classes-file {shlex.quote(self.classes_file)}" if self.classes_file else "") if f]

    def request(self, source: str, **changes: Any) -> DataRequest:
        """The loaders' request: training's split, every image decoded now, nothing cached."""
        return DataRequest(source, val_split=self.val_split, seed=self.seed, val_group=self.group, cache="none",
                           skip_bad=self.skip_bad, decode=True, **changes)


def check_data(source: str, task: str | None = None, val_split: float = 0.0, seed: int = 0, group: str = "",
               skip_bad: bool = False, binary: bool = False, ignore_index: int | None = None, classes_file: str = ""
               ) -> list[str]:
    """The report's lines; raises CnnkitError (after printing every problem found) when training would fail.
    ``binary``, ``ignore_index``, ``classes_file``: as ``cnnkit train segment`` takes them."""
    why = "given"
    if task is None:
        task, why = guess_task(source)
    if task not in MODELS:
        raise CnnkitError(f"--task {task}: choose one of {', '.join(MODELS)}")
    given = [flag for flag, value in (("--binary", binary), ("--ignore-index", ignore_index is not None),
                                      ("--classes-file", classes_file)) if value]
    if given and task != "segment":
        raise CnnkitError(f"{given[0]}: a flag of segment data, and {source} is read as {task} data; drop it, or "
                          "pass --task segment")
    reading = Reading(val_split, seed, group, skip_bad, binary, ignore_index, classes_file)
    try:
        lines, said = _collect(lambda: _DESCRIBE[task](source, reading))
    except CnnkitError as fault:
        raise _every_problem(fault, task, source, reading) from None
    found = [m for m in said if m.startswith(("found:", "splits:", "validation holds out", "segment data"))
             or ": skipped " in m]
    problems = [m for m in said if m.startswith("warning")]
    if task == "instance" and any(line.startswith("annotations: boxes only") for line in lines):
        task = "detect"
    flags = [*reading.flags(), *(line.split("flags: ", 1)[1] for line in lines if line.startswith("flags: "))]
    lines = [line for line in lines if not line.startswith("flags: ")]
    if any("pass --ignore-index 11" in m for m in found) and reading.ignore_index is None:
        flags.append("--ignore-index 11")
    return [*found, f"task: {task} ({why})", *lines, f"problems: {len(problems)}" + ("" if problems else " (none)"),
            *[f"  {p}" for p in problems],
            " ".join(["train with: cnnkit train", task, "--data", source, "--model", MODELS[task], *flags])]


def _every_problem(fault: CnnkitError, task: str, source: str, reading: Reading) -> CnnkitError:
    """Print every problem, not the first kind alone (training stops at that), and return the error to raise:
    the data is read again skipping what is bad, as --skip-bad would, so each later check runs too."""
    said, again = getattr(fault, "found", []), None
    if not reading.skip_bad:
        try:
            said = _collect(lambda: _DESCRIBE[task](source, replace(reading, skip_bad=True)))[1]
        except CnnkitError as e:
            said, again = getattr(e, "found", said), e
        said = [m.removesuffix("; skipped") for m in said]  # this check skipped them, not the user's flag
    for message in said:
        print(message)
    problems = [m.removeprefix("warning: ") for m in said if m.startswith("warning")]
    if again is not None and str(again) != str(fault):
        print(f"and, with the files above skipped: {again}")
    if reading.skip_bad or again is not None or len(problems) < 2:
        return fault
    return CnnkitError(f"{len(problems)} problems in {source}, all listed above, the first: {problems[0]}; fix or "
                       "remove those files, or pass --skip-bad to skip them")


def _collect(describe) -> tuple[list[str], list[str]]:
    """``describe()``'s lines, and what the loaders said meanwhile (kept from the console: the report
    says it once, in order)."""
    said, propagate, level = _Collector(), LOGGER.propagate, LOGGER.level
    LOGGER.addHandler(said)
    LOGGER.propagate = False
    LOGGER.setLevel(logging.INFO)
    try:
        return describe(), said.messages
    except CnnkitError as e:
        e.found = said.messages  # type: ignore[attr-defined]
        raise
    finally:
        LOGGER.removeHandler(said)
        LOGGER.propagate, LOGGER.level = propagate, level


class _Collector(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


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


def dhash(path: Path) -> np.ndarray | None:
    """64-bit difference hash (grey 9x8, each pixel brighter than its right neighbour), as 64 bools."""
    try:
        with Image.open(path) as im:
            grey = np.asarray(im.convert("L").resize((9, 8), Image.BILINEAR), np.int16)
    except UNREADABLE:
        return None
    return (grey[:, 1:] > grey[:, :-1]).ravel()


def near_duplicates(train: list, val: list) -> str:
    """How many validation images look like a training image (a perceptual hash within NEAR bits):
    frames of one video, or one slide photographed twice, make validation flatter than new data."""
    def hashes(items: list) -> tuple[list, np.ndarray]:
        paths = [p for p in items if isinstance(p, Path)]
        pick = [paths[int(i)] for i in np.linspace(0, len(paths) - 1, min(HASH_LIMIT, len(paths))).astype(int)] \
            if paths else []
        found = [(p, h) for p in pick if (h := dhash(p)) is not None]
        return [p for p, _ in found], np.array([h for _, h in found], np.float32).reshape(-1, 64)

    train_paths, a = hashes(train)
    val_paths, b = hashes(val)
    if not len(a) or not len(b):
        return "near-duplicates: not checked (images decoded in memory)"
    distance = b @ (1 - a).T + (1 - b) @ a.T  # Hamming distance of every val/train pair
    nearest = distance.argmin(1)
    close = np.flatnonzero(distance[np.arange(len(b)), nearest] <= NEAR)
    if not len(close):
        return f"near-duplicates: none of {len(b)} val images looks like a training image"
    i = int(close[0])
    return (f"near-duplicates: {len(close)} of {len(b)} val images look like a training image (e.g. {val_paths[i]} ~ "
            f"{train_paths[int(nearest[i])]}); validation will flatter the model: hold out whole groups "
            "(--val-group) or give a val/ folder of other footage")


def _describe_classify(source: str, reading: Reading) -> list[str]:
    from cnnkit.data.classify import load_classify_data

    data = load_classify_data(reading.request(source, imgsz=32))
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
    return out


def _describe_segment(source: str, reading: Reading) -> list[str]:
    from cnnkit.data.masks import class_pixel_stats
    from cnnkit.data.segment import load_segment_data

    ignore = 255 if reading.ignore_index is None else reading.ignore_index
    data = load_segment_data(reading.request(source), binary=reading.binary, ignore_index=ignore,
                             classes_file=reading.classes_file)
    train = cast("RawSplit", data.train)  # loaded for training: set, with its infos
    infos = cast("list[MaskInfo]", train.infos)
    pixels, _ = class_pixel_stats(infos, data.spec)
    share = pixels / max(pixels.sum(), 1)
    values = sorted({v for info in infos for v in info.counts})
    out = [f"classes ({len(data.spec.names)}, from {data.spec.source or 'the mask values'}; ignore index "
           f"{data.spec.ignore_value}): " + ", ".join(f"{n} {s:.1%}" for n, s in zip(data.spec.names[:24], share)),
           f"mask values in train: {values[:24]}{' ...' if len(values) > 24 else ''}; channels: {data.channels}",
           image_summary(train.images), near_duplicates(train.images, data.val.images)]
    return out


def _describe_instance(source: str, reading: Reading) -> list[str]:
    from cnnkit.data.instance_data import boxes_without_masks, load_instance_data

    data = load_instance_data(reading.request(source))
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
    out.append(f"annotations: {'masks' + mixed if masks else 'boxes only (train with: cnnkit train detect)'}; "
               f"channels: {data.channels}")
    out.append(image_summary([i.image for i in (data.train or data.val)]))
    train = cast("list[InstanceItem]", data.train)  # loaded for training: set
    out.append(near_duplicates([i.image for i in train], [i.image for i in data.val]))
    sides = sorted(max(i.objects.size) for i in train[:200])
    crop = min(512, max(64, 32 * int(np.ceil(sides[len(sides) // 2] / 32)))) if sides else 512
    out.append(f"flags: --imgsz {crop}")  # a crop near the images' own size, at most 512
    return out


def _labels(objects) -> np.ndarray:
    if objects.labels is not None:
        return objects.labels
    from cnnkit.data.instance import read_id_map

    ids = read_id_map(objects.id_map) if isinstance(objects.id_map, Path) else objects.id_map
    return np.array([objects.map_classes.get(int(i), 0) for i in np.unique(ids) if i > 0], np.int64)


_DESCRIBE = {"classify": _describe_classify, "segment": _describe_segment, "instance": _describe_instance,
             "detect": _describe_instance}

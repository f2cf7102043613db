"""A data layout as an object: what it is called, whether a folder is in it and why, and its reader.

Each task declares its layouts in its own folder (``tasks/<task>/layouts.py``, listed by its
``TaskSpec.layouts``). Training, ``cnnkit val``, ``cnnkit data check``, ``cnnkit data convert`` and
the task guess all use the same objects:

- ``detect(root)`` says why ``root`` is in this layout, or None: a look at names (and at most one
  file's header), no data read.
- ``read(source, **reading)`` reads the named splits (``{'train'|'val'|'test'|'all': items}``,
  what ``data.splits.resolve_splits`` takes) into a :class:`Found`, whose ``line()`` is the
  "found: ..." sentence that training logs and ``data check`` prints.

When several layouts of several tasks match a folder, the most specific wins: the one of the highest
``rank`` (below), then the task registered first, then the task's own order. ``--task`` picks another.

Torch-free: a layout names its reader as ``"module:function"``, imported on first use.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# how specific a match is; the most specific of every task's layouts is the guess
MARKER = 30  # a file or folder that names the format: data.yaml, a COCO .json, IDX files, VOC's JPEGImages/
STRUCTURE = 20  # a shape only this kind of data has: label .txt folders, one mask per object, <split>annot/
PAIRED = 10  # images beside masks (read as class masks first)
FOLDERS = 0  # sub-folders of images (read as classes)
ANY = -10  # any images at all (pretraining reads every layout)


@dataclass
class Found:
    """What a layout read: its named splits and what the reader learnt on the way.

    ``line()`` builds the "found: ..." sentence from these fields (``form`` with {name}, {root},
    {why} and {counts} filled in), so a reworded log line changes nothing that reads a Found."""

    name: str  # the layout's name as said to the user: "YOLO (Ultralytics)", "segnet", "ImageFolder"
    root: Path
    why: str  # what in the folder made it this layout
    splits: dict[str, Any]  # {'train'|'val'|'test'|'all': items}
    labels: dict[str, str] = field(default_factory=dict)  # split -> folder or file, for messages
    classes: list[str] | None = None  # class names the layout itself gives (a yaml's, a COCO file's)
    unit: str = ""  # what one item is ("images", "image/mask pairs"); "" leaves the count out of the line
    flags: tuple[str, ...] = ()  # `cnnkit train` flags this layout needs (SegNet's --ignore-index 11)
    extra: dict[str, Any] = field(default_factory=dict)  # the reader's own results (a ClassSpec, formats per split)
    form: str = "found: {name} layout in {root} ({why}){counts}"

    def count(self) -> int:
        return sum(len(items) for items in self.splits.values())

    def line(self) -> str:
        """The human-readable "found:" line ("" for data made in memory, which is found nowhere)."""
        if not self.form:
            return ""
        counts = f", {self.count()} {self.unit}" if self.unit else ""
        if self.classes is not None and self.unit:
            shown = ", ".join(self.classes[:10]) + ("..." if len(self.classes) > 10 else "")
            counts += f", {len(self.classes)} class{'es' if len(self.classes) != 1 else ''} ({shown})"
        return self.form.format(name=self.name, root=self.root, why=self.why, counts=counts)


@dataclass(frozen=True)
class Layout:
    """One data layout of a task: ``detect`` finds it, ``reader`` (``"module:function"``, called as
    ``function(source, **reading) -> Found``) reads it. ``describe`` (``"module:function"``, optional)
    is what ``cnnkit data check`` reports about the data read, beyond the found line."""

    name: str
    summary: str  # what it looks like, for the messages that list the layouts a task reads
    finder: Callable[[Path], str | None]
    reader: str
    rank: int = FOLDERS
    describe: str = ""

    def detect(self, root: Path) -> str | None:
        """Why ``root`` is in this layout, or None; looks at names (and at most one file's header)."""
        return self.finder(root)

    def read(self, source: str, **reading: Any) -> Found:
        """The named splits of ``source``; ``reading``: the reader's options (skip_bad, seed, names, ...)."""
        return load(self.reader)(source, **reading)


def load(target: str) -> Any:
    """The object a ``"module:name"`` string names, imported now."""
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)


def read_with(layouts: Sequence[Layout], source: str, default: str, **reading: Any) -> Found:
    """``source`` read by the layout of ``layouts`` that :func:`choose` picks; by the reader ``default``
    (``"module:function"``) when no layouts are given (a loader called directly, not through a task)."""
    if not layouts:
        return load(default)(source, **reading)
    return choose(layouts, Path(source))[0].read(source, **reading)


def choose(layouts: Sequence[Layout], root: Path) -> tuple[Layout, str | None]:
    """The layout training reads ``root`` with: the first that detects it, with why; else the task's last
    (its catch-all reader, whose own error names what it expected), with None."""
    if not layouts:
        raise ValueError("a task that reads data declares at least one layout")
    for layout in layouts:
        why = layout.detect(root)
        if why is not None:
            return layout, why
    return layouts[-1], None


@dataclass(frozen=True)
class Match:
    """A layout of a task that detected a data set, and why."""

    task: str
    layout: Layout
    why: str


def matches(layouts: Mapping[str, Sequence[Layout]], root: Path) -> list[Match]:
    """Every task's layouts that detect ``root``, most specific first (rank, then the order of
    ``layouts``, then each task's own order); one match per task, its most specific."""
    found: list[Match] = []
    for task, own in layouts.items():
        hits = [Match(task, layout, why) for layout in own if (why := layout.detect(root)) is not None]
        if hits:
            found.append(max(hits, key=lambda m: m.layout.rank))  # max keeps the first of equal rank
    return sorted(found, key=lambda m: -m.layout.rank)  # sorted is stable: ties keep the tasks' order


def files_of(root: Path) -> tuple[set[str], set[str]]:
    """(names in ``root``, names one folder below), lower case, hidden ones left out: what detection looks at."""
    if not root.is_dir():
        return set(), set()
    children = [p for p in root.iterdir() if not p.name.startswith(".")]
    below = {q.name.lower() for d in children if d.is_dir() for q in d.iterdir() if not q.name.startswith(".")}
    return {p.name.lower() for p in children}, below


# detections several tasks share (each task still declares its own Layout objects)

def shapes(root: Path) -> str | None:
    """The built-in synthetic shapes ('shapes' or 'shapes:N'), which every task can read."""
    from cnnkit.data.synthetic import is_shapes

    return "the synthetic shapes" if is_shapes(str(root)) else None


def idx_files(root: Path) -> str | None:
    from cnnkit.data.idx import is_idx_folder

    return "MNIST-style IDX files" if root.is_dir() and is_idx_folder(root) else None


def csv_file(root: Path) -> str | None:
    return "a .csv file" if root.is_file() and root.suffix.lower() == ".csv" else None


def sub_folders(root: Path) -> list[Path]:
    """``root``'s visible sub-folders (none when it is not a folder)."""
    return [p for p in sorted(root.iterdir()) if p.is_dir() and not p.name.startswith(".")] if root.is_dir() else []

"""Seed files: the few pixels per class a user marks for segmentation from seeds, read and checked.

Seeds come as a PNG of class numbers (0 = unmarked), a JSON list of points and scribbles with class names,
a CSV of ``x,y,class`` rows, or a folder of such files named after the images. Coordinates are pixels of
the full-resolution image, x to the right, y down; floats round to the nearest pixel (halves up).
Every problem is a one-line ``CnnkitError`` that names the file (and entry or line) and the fix.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cnnkit.errors import CnnkitError, did_you_mean
from cnnkit.grow.seed_files import Seeds, read_file, read_text

SEED_EXTS = (".png", ".json", ".csv")
MAX_CLASSES = 254  # what a segmentation data set holds (cnnkit.data.masks.ClassSpec)


@dataclass(frozen=True, eq=False)  # eq=False: comparing lists of arrays has no single truth value
class SeedSet:
    """The seeds of a list of images.

    ``maps[i]`` is ``(H, W)`` int32 for ``images[i]``: 0 unknown, ``k`` = class ``classes[k-1]``; ``None``
    when that image has no seeded pixel. ``classes`` are the class names in index order.
    """

    maps: list[np.ndarray | None]
    classes: tuple[str, ...]

    def counts(self) -> np.ndarray:
        """``(N, C)`` int64: seeded pixels per image and class (``.sum(1)``: per image)."""
        out = np.zeros((len(self.maps), len(self.classes)), np.int64)
        for i, m in enumerate(self.maps):
            if m is not None:
                out[i] = np.bincount(m.ravel(), minlength=len(self.classes) + 1)[1:len(self.classes) + 1]
        return out


def read_seeds(source: str | Path, images: Sequence[Path], sizes: Sequence[tuple[int, int]],
               classes: Sequence[str] | None = None) -> SeedSet:
    """Read the seeds of ``images`` (``sizes[i]`` = (width, height) px of ``images[i]``) from ``source``.

    ``source`` is a seed file (PNG, JSON or CSV: a plain one holds the seeds of the only image; a JSON keyed
    by image name or a CSV with an ``image`` column serves any number) or a folder of per-image files
    ``<stem>.png|json|csv`` or ``<stem>_seeds.<ext>``. ``classes`` (e.g. from :func:`parse_classes`) fixes
    the names and their order; without it names come in order of first appearance (files in sorted order)
    and PNG values 1..max are named ``class1``..``classC``. Images without seeds are allowed (map ``None``).

    Raises ``CnnkitError`` (one line: file, entry or line, fix) for a point outside its image, an unknown
    class, a bad or missing CSV column, malformed JSON, a colour PNG, a PNG of another size than its image or
    with values above the classes, a seed file or key naming no image (or several), an image given twice,
    PNG numbers mixed with names without ``classes``, and no seeded pixel at all.
    """
    src, paths = Path(source), [Path(p) for p in images]
    if len(sizes) != len(paths):
        raise ValueError(f"{len(paths)} images but {len(sizes)} sizes")
    names = _check_names("--classes", list(classes)) if classes is not None else None
    if src.is_dir():
        found = _read_folder(src, paths)
    elif src.is_file():
        found = _read_single(src, paths)
    else:
        raise CnnkitError(f"{src}: seed source not found; pass a seed file (.png, .json, .csv) or a folder of "
                          "them named after the images")
    if names is None:
        names = _infer_classes(src, found)
    maps: list[np.ndarray | None] = [None] * len(paths)
    for i, path, seeds in found:
        maps[i] = _draw(path, seeds, sizes[i], paths[i], names)
    if all(m is None for m in maps):
        raise CnnkitError(f"{src}: no seeds at all (no marked pixel in any of the {len(paths)} images); mark a "
                          "few pixels of each class")
    return SeedSet(maps, names)


def parse_classes(text_or_path: str) -> tuple[str, ...]:
    """Class names from ``"a,b,c"``, a text file of one name per line, or a cnnkit ``classes.csv``
    (``index,name,r,g,b``; names in index order). Raises ``CnnkitError`` on a missing file, an empty
    or repeated name."""
    path = Path(text_or_path)
    if path.suffix.lower() not in (".txt", ".csv") and not path.is_file():
        return _check_names(f"--classes {text_or_path}", [n.strip() for n in text_or_path.split(",")])
    if not path.is_file():
        raise CnnkitError(f"{path}: classes file not found; pass --classes a,b,c or a text file of one class "
                          "name per line")
    text = read_text(path)
    if path.suffix.lower() != ".csv":
        return _check_names(str(path), [s.strip() for s in text.splitlines()
                                        if s.strip() and not s.strip().startswith("#")])
    from cnnkit.data.masks import read_classes_file  # the reader training uses: one format for both

    spec = read_classes_file(path, ignore_value=-1)  # -1: no row is the ignored one
    return _check_names(str(path), [name for _, name in sorted(zip(spec.values, spec.names))])


def _check_names(origin: str, names: list[str]) -> tuple[str, ...]:
    if not names:
        raise CnnkitError(f"{origin}: no class names; give them as --classes road,sky,... or a file of one per line")
    if len(names) > MAX_CLASSES:
        raise CnnkitError(f"{origin}: {len(names)} classes; at most {MAX_CLASSES} are supported")
    for i, name in enumerate(names, 1):
        if not name.strip():
            raise CnnkitError(f"{origin}: class {i} has an empty name; give every class a name")
        if name in names[:i - 1]:
            raise CnnkitError(f"{origin}: class '{name}' appears twice; give each class once")
    return tuple(names)


def _read_single(path: Path, images: list[Path]) -> list[tuple[int, Path, Seeds]]:
    parsed = read_file(path)
    if None not in parsed:
        return _match_keys(path, parsed, images)
    if len(images) != 1:
        fix = ("pass a folder of PNGs named after the images (<stem>.png)" if path.suffix.lower() == ".png" else
               'key the seeds by image name ({"a.jpg": [...], ...}, or an image column in a CSV) or pass a folder '
               "of per-image files named after the images")
        raise CnnkitError(f"{path}: holds the seeds of one image, but {len(images)} images are given; {fix}")
    return [(0, path, parsed[None])]


def _read_folder(folder: Path, images: list[Path]) -> list[tuple[int, Path, Seeds]]:
    files = sorted(p for p in folder.iterdir()
                   if p.suffix.lower() in SEED_EXTS and not p.name.startswith(".") and p.is_file())
    if not files:
        raise CnnkitError(f"{folder}: no seed files in it; add <stem>.png, <stem>.json or <stem>.csv per image, "
                          "named after the image")
    index = _image_index(images)
    found: list[tuple[int, Path, Seeds]] = []
    first: dict[int, Path] = {}
    for f in files:
        stem = f.stem
        if not _lookup(stem, images, index) and stem.lower().endswith("_seeds"):
            stem = stem[:-len("_seeds")]
        i = _find_image(str(f), stem, images, index)
        if i in first:
            raise CnnkitError(f"{f}: image {images[i].name} already has seeds from {first[i]}; keep one of the "
                              "two files")
        parsed = read_file(f)
        if None not in parsed:
            raise CnnkitError(f"{f}: seeds keyed by image name, but a file in a seed folder holds only the seeds of "
                              f"the image it is named after ({images[i].name}); pass the file itself as the source")
        first[i] = f
        found.append((i, f, parsed[None]))
    return found


def _image_index(images: list[Path]) -> dict[str, list[int]]:
    index: dict[str, list[int]] = {}
    for i, p in enumerate(images):
        for key in dict.fromkeys((p.name, p.stem)):
            index.setdefault(key, []).append(i)
    return index


def _lookup(key: str, images: list[Path], index: dict[str, list[int]]) -> list[int]:
    key = key.replace("\\", "/").removeprefix("./")
    if "/" not in key:
        return index.get(key, [])
    # a key with folders ("day/a.jpg") tells apart images of the same name in different folders
    return [i for i, p in enumerate(images)
            if any(s == key or s.endswith("/" + key) for s in (p.as_posix(), p.with_suffix("").as_posix()))]


def _find_image(where: str, key: str, images: list[Path], index: dict[str, list[int]]) -> int:
    hits = _lookup(key, images, index)
    if not hits:
        hint = did_you_mean(key, index)
        raise CnnkitError(f"{where}: no image named {key} among the {len(images)} images given; rename it to an "
                          f"image's name or remove it{'.' if hint else ''}{hint}")
    if len(hits) > 1:
        named = ", ".join(str(images[i]) for i in hits[:3])
        raise CnnkitError(f"{where}: {key} names {len(hits)} images ({named}); name the image by its file name "
                          "with extension, or by its folder and name")
    return hits[0]


def _match_keys(path: Path, parsed: dict[str | None, Seeds], images: list[Path]) -> list[tuple[int, Path, Seeds]]:
    index = _image_index(images)
    found: list[tuple[int, Path, Seeds]] = []
    key_of: dict[int, str] = {}
    for key, seeds in parsed.items():
        assert key is not None
        i = _find_image(f'{path}: "{key}"', key, images, index)
        if i in key_of:
            raise CnnkitError(f'{path}: "{key_of[i]}" and "{key}" both name image {images[i].name}; give each '
                              "image's seeds under one key")
        key_of[i] = key
        found.append((i, path, seeds))
    return found


def _infer_classes(source: Path, found: list[tuple[int, Path, Seeds]]) -> tuple[str, ...]:
    pngs = [(p, s) for _, p, s in found if isinstance(s, np.ndarray) and s.any()]
    named = [(p, s) for _, p, s in found if isinstance(s, list) and s]
    if pngs and named:
        raise CnnkitError(f"{source}: class numbers ({pngs[0][0].name}) mixed with class names "
                          f"({named[0][0].name}); pass --classes name1,name2,... so that number k is the k-th name")
    if not pngs:
        return tuple(dict.fromkeys(shape.cls for _, shapes in named for shape in shapes))
    top, path = max((int(s.max()), p) for p, s in pngs)
    if top > MAX_CLASSES:
        raise CnnkitError(f"{path}: value {top} found; seeds are class numbers 1..C (C at most {MAX_CLASSES}), "
                          "0 = unmarked (a white-on-black drawing is 255: paint each class with its number)")
    return tuple(f"class{k}" for k in range(1, top + 1))


def _draw(path: Path, seeds: Seeds, size: tuple[int, int], image: Path,
          names: tuple[str, ...]) -> np.ndarray | None:
    """One image's ``(H, W)`` int32 map, or None when nothing in it is seeded."""
    w, h = size
    if isinstance(seeds, np.ndarray):
        if seeds.shape != (h, w):
            raise CnnkitError(f"{path}: {seeds.shape[1]}x{seeds.shape[0]} px, but image {image.name} is {w}x{h} px; "
                              "draw the seeds at the image's full size")
        top = int(seeds.max())
        if top > len(names):  # np.unique sorts every pixel: only on the way to the message
            values = np.unique(seeds)
            found = ", ".join(str(v) for v in values[values > 0][:12])
            raise CnnkitError(f"{path}: holds the values {found}, but there are {len(names)} classes "
                              f"({', '.join(names)[:200]}); seeds are 0 = unmarked and 1..{len(names)} = the classes")
        return seeds if top > 0 else None
    ids = {name: k for k, name in enumerate(names, 1)}
    m = np.zeros((h, w), np.int32)
    for s in seeds:
        k = ids.get(s.cls)
        if k is None:
            raise CnnkitError(f"{s.where}: class '{s.cls}' is not one of the {len(names)} classes "
                              f"({', '.join(names)[:200]}).{did_you_mean(s.cls, names)} Fix the name or add it "
                              "to --classes")
        for x, y in s.points:
            if not (0 <= x < w and 0 <= y < h):
                raise CnnkitError(f"{s.where}: ({x}, {y}) is outside image {image.name}, which is {w}x{h} px; "
                                  f"give full-resolution pixels, x 0..{w - 1} to the right, y 0..{h - 1} down")
        if _paint(m, s.points, s.size / 2 if s.line else s.size, k):
            raise CnnkitError(f"{s.where}: class '{s.cls}' marks pixels that another entry seeds as another class; "
                              "a seeded pixel has one class: move or shrink one of the two")
    return m if m.any() else None


def _paint(m: np.ndarray, points: tuple[tuple[int, int], ...], half: float, k: int) -> bool:
    """Set to ``k`` the pixels whose centre lies within ``half`` px of the polyline through ``points`` (one
    point: a disc). Drawn exactly rather than with cv2, whose 3 px stroke paints 5 px and whose circle rim
    is approximate: a seed must mark no pixel the user did not mean. True where it met another class's seed."""
    clash = False
    for (ax, ay), (bx, by) in zip(points, points[1:] or points):
        x0, x1 = max(0, math.floor(min(ax, bx) - half)), min(m.shape[1], math.ceil(max(ax, bx) + half) + 1)
        y0, y1 = max(0, math.floor(min(ay, by) - half)), min(m.shape[0], math.ceil(max(ay, by) + half) + 1)
        yy, xx = np.ogrid[y0:y1, x0:x1]
        dx, dy = bx - ax, by - ay
        t = np.clip(((xx - ax) * dx + (yy - ay) * dy) / max(dx * dx + dy * dy, 1), 0, 1)  # nearest point's place
        window = m[y0:y1, x0:x1]
        inside = (xx - ax - t * dx) ** 2 + (yy - ay - t * dy) ** 2 <= half * half
        clash = clash or bool(((window != 0) & (window != k) & inside).any())
        window[inside] = k
    return clash

"""Seed files, one at a time: a PNG of class numbers, JSON points and scribbles, or a CSV of points, read
into shapes with class names (or a PNG's numbers) and checked line by line; ``seeds.py`` matches them to
images and draws them. Every problem is a one-line ``CnnkitError`` naming the file, entry or line, and the fix.
"""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TypeAlias

import numpy as np
from PIL import Image

from cnnkit.data.images import UNREADABLE, bomb_message
from cnnkit.errors import CnnkitError, did_you_mean

DEFAULT_WIDTH = 3  # px, a scribble's stroke when the entry gives none
CSV_COLUMNS = ("x", "y", "class", "radius", "image")
PNG_FIX = "save the seeds as a one-channel PNG of class numbers 1..C, 0 = unmarked"
ENTRY_FORM = '{"x": 10, "y": 20, "class": "road"} or {"line": [[x, y], [x, y]], "class": "road"}'


@dataclass(frozen=True)
class Shape:
    """One seed as read, before its class has a number: a pixel, a disc or a scribble."""

    where: str  # "seeds.json: entry 3", to name it in messages
    cls: str
    points: tuple[tuple[int, int], ...]  # (x, y) px; one for a pixel or disc, two or more for a scribble
    size: int  # disc radius (0: one pixel) or scribble width, px
    line: bool


Seeds: TypeAlias = "np.ndarray | list[Shape]"  # one image's seeds: a PNG's class numbers or named shapes


class _DuplicateKey(Exception):
    pass


def read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as e:
        raise CnnkitError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start}); save it as UTF-8") from None
    except OSError as e:
        raise CnnkitError(f"{path}: unreadable ({e.strerror}); check the file's permissions") from None


def read_file(path: Path) -> dict[str | None, Seeds]:
    """One seed file: ``{None: seeds}`` for one image's seeds, else ``{image key: seeds}``."""
    ext = path.suffix.lower()
    if ext in (".json", ".csv"):
        return _read_json(path) if ext == ".json" else _read_csv(path)
    if ext == ".png":
        return {None: _read_png(path)}
    raise CnnkitError(f"{path}: not a seed file; seeds are a .png, .json or .csv file, or a folder of them")


def _read_png(path: Path) -> np.ndarray:
    try:
        with Image.open(path) as im:
            im.load()
            if im.mode == "LA":
                im = im.getchannel(0)
            if im.mode not in ("1", "L", "P", "I") and not im.mode.startswith("I;16"):
                raise CnnkitError(f"{path}: a PNG of mode {im.mode}, not one channel of class numbers; {PNG_FIX}")
            arr = np.asarray(im).astype(np.int32)
    except Image.DecompressionBombError as e:
        raise CnnkitError(bomb_message(path, e)) from None
    except UNREADABLE as e:
        raise CnnkitError(f"{path}: unreadable PNG ({e}); {PNG_FIX}") from None
    if arr.size and arr.min() < 0:
        raise CnnkitError(f"{path}: negative values; {PNG_FIX}")
    return arr


def _no_duplicates(pairs: list[tuple[str, object]]) -> dict[str, object]:
    seen: set[str] = set()
    for k, _ in pairs:
        if k in seen:
            raise _DuplicateKey(k)
        seen.add(k)
    return dict(pairs)


def _read_json(path: Path) -> dict[str | None, Seeds]:
    try:
        # json.loads would keep only the last of two equal keys: the seeds of an image given twice
        data = json.loads(read_text(path), object_pairs_hook=_no_duplicates)
    except json.JSONDecodeError as e:
        raise CnnkitError(f"{path}: not valid JSON ({e.msg} at line {e.lineno}, column {e.colno}); "
                          "fix the file") from None
    except _DuplicateKey as e:
        raise CnnkitError(f'{path}: the key "{e}" appears twice in one object; give each image (and each '
                          "field of an entry) once") from None
    if isinstance(data, dict) and "points" in data:
        data = data["points"]
    if isinstance(data, list):
        return {None: [_json_entry(f"{path}: entry {j}", e) for j, e in enumerate(data, 1)]}
    if not isinstance(data, dict):
        raise CnnkitError(f"{path}: a JSON {type(data).__name__}; seeds are a list of points [{ENTRY_FORM}, ...], "
                          '{"points": [...]} or, for several images, {"a.jpg": [...], "b.jpg": [...]}')
    out: dict[str | None, Seeds] = {}
    for key, entries in data.items():
        if isinstance(entries, dict) and "points" in entries:
            entries = entries["points"]
        if not isinstance(entries, list):
            raise CnnkitError(f'{path}: "{key}" holds a JSON {type(entries).__name__}, not a list of points; give '
                              f"each image a list [{ENTRY_FORM}, ...]")
        out[key] = [_json_entry(f'{path}: "{key}" entry {j}', e) for j, e in enumerate(entries, 1)]
    return out


def _json_entry(where: str, entry: object) -> Shape:
    if not isinstance(entry, dict):
        raise CnnkitError(f"{where} is {json.dumps(entry)[:40]}, not an object; write each seed as {ENTRY_FORM}")
    cls = entry.get("class")
    if not isinstance(cls, str) or not cls.strip():
        got = "no \"class\"" if cls is None else f'"class": {json.dumps(cls)}'
        raise CnnkitError(f"{where} has {got}; give each seed a class name (a string), as in {ENTRY_FORM}")
    if "line" not in entry:
        if "x" not in entry or "y" not in entry:
            raise CnnkitError(f'{where} has no "x" and "y" (or "line"); write each seed as {ENTRY_FORM}')
        xy = (_pixel(where, "x", entry["x"]), _pixel(where, "y", entry["y"]))
        return Shape(where, cls.strip(), (xy,), _size(where, "radius", entry.get("radius", 0), 0), False)
    line = entry["line"]
    if "x" in entry or "y" in entry:
        raise CnnkitError(f'{where} has both "x"/"y" and "line"; a seed is a point or a scribble, not both')
    if not isinstance(line, list) or len(line) < 2 or any(not isinstance(p, list) or len(p) != 2 for p in line):
        raise CnnkitError(f'{where}: "line" must be two or more [x, y] points, as in [[10, 20], [30, 40]] (a single '
                          'point is {"x": .., "y": ..})')
    points = tuple((_pixel(where, "x", p[0]), _pixel(where, "y", p[1])) for p in line)
    return Shape(where, cls.strip(), points, _size(where, "width", entry.get("width", DEFAULT_WIDTH), 1), True)


def _pixel(where: str, name: str, value: object) -> int:
    try:
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise ValueError
        return math.floor(float(value) + 0.5)  # halves up, as round() would not (2.5 -> 2); inf: OverflowError
    except (ValueError, OverflowError):
        raise CnnkitError(f"{where}: {name} is {json.dumps(value)}, not a finite number; give {name} in "
                          "pixels") from None


def _size(where: str, name: str, value: object, least: int) -> int:
    size = _pixel(where, name, value)
    if size < least:
        raise CnnkitError(f"{where}: {name} {value} is below {least}; give {name} in pixels, {least} or more")
    return size


def _read_csv(path: Path) -> dict[str | None, Seeds]:
    reader = csv.reader(io.StringIO(read_text(path)))
    header = [c.strip().lower() for c in next(reader, [])]
    form = "The header must be x,y,class with optional radius and image columns"
    if not header:
        raise CnnkitError(f"{path}: empty; the first line must be the header x,y,class")
    for col in header:
        if col not in CSV_COLUMNS or header.count(col) > 1:
            what = "appears twice" if col in CSV_COLUMNS else "is not a seed column"
            raise CnnkitError(f"{path}: column '{col}' {what}.{did_you_mean(col, CSV_COLUMNS)} {form}")
    for col in ("x", "y", "class"):
        if col not in header:
            raise CnnkitError(f"{path}: no '{col}' column (header: {','.join(header)}). {form}")
    groups: dict[str | None, list[Shape]] = {}
    for row in reader:
        if not any(c.strip() for c in row):
            continue
        where = f"{path}: line {reader.line_num}"
        if len(row) != len(header):
            raise CnnkitError(f"{where} has {len(row)} values for the {len(header)} columns {','.join(header)}; "
                              "fix the row")
        cell = dict(zip(header, (c.strip() for c in row)))
        if not cell["class"]:
            raise CnnkitError(f"{where} has an empty class; give each row a class name")
        key = cell.get("image")
        if key == "":
            raise CnnkitError(f"{where} has an empty image; name the image (file name or stem) on every row")
        xy = (_pixel(where, "x", cell["x"]), _pixel(where, "y", cell["y"]))
        radius = _size(where, "radius", cell.get("radius") or 0, 0)
        groups.setdefault(key, []).append(Shape(where, cell["class"], (xy,), radius, False))
    return dict(groups) if "image" in header else {None: groups.get(None, [])}

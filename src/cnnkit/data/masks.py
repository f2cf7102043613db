"""Segmentation masks: the classes file, mask formats, and the checks run before training.

Inside cnnkit a mask is ``(H, W)`` uint8 of class ids ``0..C-1`` with ``IGNORE`` (255) for pixels
that count in neither loss nor metrics. On disk masks come as index PNGs (8 or 16 bit), palette
PNGs (VOC), RGB colour-coded PNGs (through a classes file) or binary masks (0/255 or 0/1).
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from cnnkit.data.images import UNREADABLE, as_skipped, bomb_message
from cnnkit.errors import CnnkitError
from cnnkit.log import LOGGER

IGNORE = 255  # internal id of ignored pixels
UNKNOWN = 254  # internal id of values outside the classes, found and reported before training


def pack(colour) -> int:
    """(r, g, b) -> 0xRRGGBB, the form RGB masks are compared in."""
    r, g, b = colour
    return (int(r) << 16) | (int(g) << 8) | int(b)


def default_colours(n: int) -> list[tuple[int, int, int]]:
    """The Pascal VOC colour map: distinct colours for class ids 0..n-1 (0 is black)."""
    colours = []
    for i in range(n):
        r = g = b = 0
        c = i
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        colours.append((r, g, b))
    return colours


VOC_CLASSES = ("background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
               "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train",
               "tvmonitor")


@dataclass
class ClassSpec:
    """The classes of a data set: names, the mask value of each on disk, and display colours."""

    names: list[str]
    values: list[int]  # value in index/palette masks on disk, per class id
    colours: list[tuple[int, int, int]]  # colour in RGB masks and in the outputs, per class id
    ignore_value: int = 255  # value on disk that is ignored (CamVid: 11, VOC: 255)
    ignore_colour: tuple[int, int, int] | None = None  # its colour in RGB masks, when the classes file has it
    binary: bool = False
    void_values: tuple[int, ...] = ()  # further values on disk that are ignored (Cityscapes' unevaluated ids)
    source: str = ""  # where the classes came from, for messages
    _lut: np.ndarray | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if len(self.names) > 254:
            raise CnnkitError(f"{self.source}: {len(self.names)} classes; at most 254 are supported")

    def value_lut(self) -> np.ndarray:
        """(65536,) uint8: disk value -> class id; unknown values map to UNKNOWN (reported by the checks).
        Binary masks: 0 is background and any other value foreground; the ignore index counts only
        when it is neither 1 nor 255, which mean foreground there."""
        if self._lut is None:
            if self.binary:
                lut = np.ones(65536, np.uint8)
                lut[0] = 0
                if self.ignore_value not in (1, 255):
                    lut[self.ignore_value] = IGNORE
            else:
                lut = np.full(65536, UNKNOWN, np.uint8)
                lut[self.ignore_value] = IGNORE
                lut[list(self.void_values)] = IGNORE
                for i, v in enumerate(self.values):
                    lut[v] = i
            self._lut = lut
        return self._lut

    def colour_ids(self) -> dict[int, int]:
        """Packed 0xRRGGBB colour -> class id, the ignore row's colour -> IGNORE."""
        ids = {pack(c): i for i, c in enumerate(self.colours)}
        if self.ignore_colour is not None:
            ids[pack(self.ignore_colour)] = IGNORE
        return ids

    def to_meta(self) -> dict:
        return {"classes": list(self.names), "values": list(self.values), "colours": [list(c) for c in self.colours],
                "ignore_index": self.ignore_value, "binary": self.binary,
                "void_values": list(self.void_values)}


def read_classes_file(path: Path, ignore_value: int) -> ClassSpec:
    """A classes file: CSV rows ``index,name[,r,g,b]`` (header optional), or a .txt of one name per line.
    The row whose index is ``ignore_value`` names the ignored pixels (its colour maps RGB masks to ignore)."""
    if not path.is_file():
        raise CnnkitError(f"{path}: classes file not found; pass a CSV of index,name,r,g,b to --classes-file")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as e:
        raise CnnkitError(f"{path}: not a UTF-8 text file ({e.reason} at byte {e.start}); save the classes file as "
                          "UTF-8 text") from None
    if path.suffix.lower() == ".txt":
        names = [line.strip() for line in text.splitlines() if line.strip()]
        rows = [[str(i), n] for i, n in enumerate(names)]
    else:
        rows = [[c.strip() for c in r] for r in csv.reader(text.splitlines()) if r and not r[0].strip().startswith("#")]
        if rows and [c.lower() for c in rows[0][:4]] == ["name", "r", "g", "b"]:  # CamVid's class_dict.csv
            rows = [[str(i), *r] for i, r in enumerate(rows[1:])]
        if rows and not rows[0][0].lstrip("-").isdigit():
            rows = rows[1:]  # header
    names, values, colours, ignore_colour = [], [], [], None
    fallback = default_colours(256)
    for n, row in enumerate(rows, 1):
        try:
            value = int(row[0])
            colour = tuple(int(c) for c in row[2:5]) if len(row) >= 5 else fallback[value % 256]
        except (ValueError, IndexError):
            raise CnnkitError(f"{path}: row {n} {row} is not index,name,r,g,b; fix the row") from None
        if len(row) < 2 or not (0 <= value < 65536) or len(colour) != 3:
            raise CnnkitError(f"{path}: row {n} {row} is not index,name,r,g,b with index in 0..65535; fix the row")
        if value == ignore_value:
            ignore_colour = colour
            continue
        names.append(row[1])
        values.append(value)
        colours.append(colour)
    if not names:
        raise CnnkitError(f"{path}: no classes (besides the ignored index {ignore_value}); add rows index,name,r,g,b")
    if len(set(values)) != len(values):
        twice = next(v for i, v in enumerate(values) if v in values[:i])
        raise CnnkitError(f"{path}: index {twice} appears twice; give each class its own index")
    return ClassSpec(names, values, colours, ignore_value, ignore_colour, source=str(path))


LOSSY = (".jpg", ".jpeg", ".jfif", ".webp")  # compression that changes class values (WebP: unless lossless)


@dataclass
class MaskInfo:
    """What one pass over a mask file found: its size, kind, and pixel count per disk value or colour."""

    size: tuple[int, int]  # (W, H)
    kind: str  # 'index' or 'rgb'
    counts: dict[int, int]  # disk value (index) or packed 0xRRGGBB colour (rgb) -> pixels
    path: Path | None = None  # the mask file, to name it in errors


def read_mask_array(path: Path) -> tuple[np.ndarray, str]:
    """Raw mask as stored: ``(H, W)`` integers for index/palette/grey masks, or ``(H, W)`` packed RGB colours."""
    if path.suffix.lower() in LOSSY:
        raise CnnkitError(f"{path}: a mask saved as JPEG, whose compression changes the class values along every "
                          "edge; save masks as PNG (for binary masks, threshold at 128 first)")
    try:
        with Image.open(path) as im:
            im.load()
            if im.mode == "F" or im.mode.startswith("I;16F"):
                raise CnnkitError(f"{path}: a floating-point mask; masks hold whole class indices (0, 1, 2, ...): save "
                                  "it as an 8- or 16-bit PNG")
            if im.mode in ("RGB", "RGBA"):
                rgb = np.asarray(im.convert("RGB"), dtype=np.int32)
                return (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2], "rgb"
            if im.mode == "LA":
                im = im.convert("L")
            return np.asarray(im).astype(np.int32, copy=False), "index"
    except Image.DecompressionBombError as e:
        raise CnnkitError(bomb_message(path, e)) from None
    except UNREADABLE as e:
        raise CnnkitError(f"{path}: unreadable mask ({e}); re-export it as PNG") from None


def scan_mask(path: Path) -> MaskInfo:
    info = mask_info(*read_mask_array(path))
    info.path = path
    return info


def mask_info(arr: np.ndarray, kind: str = "index") -> MaskInfo:
    values, counts = np.unique(arr, return_counts=True)
    return MaskInfo((arr.shape[1], arr.shape[0]), kind, dict(zip(values.tolist(), counts.tolist())))


def infer_classes(infos: Sequence[MaskInfo], ignore_value: int, binary: bool, origin: str) -> ClassSpec:
    """Classes from the values found in index masks, when no classes file is given."""
    if binary:
        return binary_spec(ignore_value)
    if any(info.kind == "rgb" for info in infos):
        raise CnnkitError(f"{origin}: masks are RGB colour images; pass a classes file (--classes-file, CSV of "
                          "index,name,r,g,b) that gives each class's colour")
    values = sorted({v for info in infos for v in info.counts} - {ignore_value})
    if not values:
        raise CnnkitError(f"{origin}: every mask pixel equals the ignore index {ignore_value}; check --ignore-index")
    _suggest_binary({v for info in infos for v in info.counts}, origin)
    if values == [0]:
        raise CnnkitError(f"{origin}: every mask holds only the value 0 (background): nothing to learn; masks hold "
                          "class indices 0, 1, 2, ... per pixel, so check that they were saved with their classes")
    top = max(values)
    if top > 253:
        where = next((i.path for i in infos if top in i.counts and i.path is not None), origin)
        raise CnnkitError(f"{where}: mask value {top}; without a classes file, index masks hold class values 0..253 "
                          "(254 and up are taken for the ignore index): give a classes file (--classes-file) that "
                          "lists the values, or, if these are instance maps (one id per object), use --task instance")
    values = list(range(top + 1))  # 0..max: class ids stay equal to mask values
    colours = default_colours(top + 1)
    return ClassSpec([f"class_{v}" for v in values], values, colours, ignore_value, source=origin)


def check_foreground(infos: Sequence[MaskInfo], origin: str) -> None:
    """Binary masks with no foreground anywhere: nothing to learn."""
    if infos and not any(v > 0 for info in infos for v in info.counts):  # binary: any value above 0 is foreground
        raise CnnkitError(f"{origin}: every mask is background (0) only: nothing to learn; check that the masks "
                          "mark the objects (foreground above 0)")


def binary_spec(ignore_value: int) -> ClassSpec:
    return ClassSpec(["background", "foreground"], [0, 1], [(0, 0, 0), (255, 255, 255)], ignore_value, binary=True,
                     source="binary masks")


def _suggest_binary(found: set[int], origin: str) -> None:
    """Masks of only 0 and 255 are almost always binary masks, whatever the ignore index says."""
    if found <= {0, 255} and 255 in found:
        raise CnnkitError(f"{origin}: masks hold only the values {sorted(found)}: binary masks (0/255)? Pass --binary "
                          "for a one-class sigmoid model (or a classes file / --ignore-index for other meanings)")


def check_masks(infos: Sequence[MaskInfo], mask_paths: Sequence[Path], image_sizes: Sequence[tuple[int, int]],
                spec: ClassSpec) -> dict[Path, str]:
    """Every problem found, by mask file: size mismatches, values outside the classes, unknown RGB colours."""
    problems: dict[Path, str] = {}
    known_values = set(spec.values) | {spec.ignore_value} | set(spec.void_values)
    known_colours = set(spec.colour_ids())
    found_outside: set[int] = set()
    for info, path, size in zip(infos, mask_paths, image_sizes):
        if info.size != size:
            problems[path] = (f"{path}: mask is {info.size[0]}x{info.size[1]} but its image is {size[0]}x{size[1]}; "
                              "masks must match their images pixel for pixel")
        if spec.binary:
            continue
        if info.kind == "rgb":
            unknown = sorted(set(info.counts) - known_colours)
            if unknown:
                shown = ", ".join(f"({c >> 16},{(c >> 8) & 255},{c & 255})" for c in unknown[:4])
                problems[path] = f"{path}: colours not in the classes file {spec.source}: {shown}; add them as rows"
        else:
            outside = sorted(set(info.counts) - known_values)
            if outside:
                found_outside.update(outside)
                problems[path] = (f"{path}: values {outside[:6]} are not class values {_range(spec.values)} nor the "
                                  f"ignore index {spec.ignore_value}")
    if found_outside and found_outside <= {255} and len(spec.values) <= 2:
        raise CnnkitError(f"{len(problems)} masks hold 255 where a {len(spec.values)}-class model expects "
                          f"{_range(spec.values)}, e.g. {next(iter(problems))}: binary masks (0/255)? Pass --binary")
    return problems


def odd_binary_masks(infos: Sequence[MaskInfo], spec: ClassSpec, shown: int = 20) -> list[Path]:
    """Warn of (and return) masks of 0 and 255 alone among masks of 0 and 1: binary masks saved the other
    way, whose foreground the ignore index 255 would drop without a word. Where any mask holds both 1
    and 255, 255 marks pixels to ignore (borders, as in VOC) and nothing is said."""
    if spec.binary or list(spec.values) != [0, 1] or spec.ignore_value != 255 or spec.ignore_colour is not None:
        return []  # a classes file that names 255 says it is meant to be ignored
    index = [i for i in infos if i.kind == "index"]
    if not any(1 in i.counts for i in index) or any({1, 255} <= i.counts.keys() for i in index):
        return []
    odd = [i.path for i in index if i.path is not None and 255 in i.counts and set(i.counts) <= {0, 255}]
    for path in odd[:shown]:
        LOGGER.warning("warning: %s: values 0 and 255 where the other masks hold 0 and 1, so its 255 pixels are "
                       "ignored (the ignore index), not foreground; save it as 0/1, or pass --binary (every value "
                       "above 0 is foreground)", path)
    if len(odd) > shown:
        LOGGER.warning("warning: %d more masks of 0 and 255 alone", len(odd) - shown)
    return odd


def _range(values: Sequence[int]) -> str:
    return f"{min(values)}..{max(values)}" if list(values) == list(range(min(values), max(values) + 1)) else str(
        list(values))


def report_problems(problems: Sequence[str], what: str, skip_bad: bool) -> None:
    """Warn about each problem; then stop with one line naming the first, unless ``skip_bad``."""
    problems = list(problems)
    if not problems:
        return
    if len(problems) == 1 and not skip_bad:  # the error line says it; a warning too would say it twice
        raise CnnkitError(f"1 {what} problem: {problems[0]}")
    for p in problems[:50]:
        LOGGER.warning("warning: %s", as_skipped(p) if skip_bad else p)
    if not skip_bad:
        raise CnnkitError(f"{len(problems)} {what} problem(s), the first: {problems[0]}"
                          + (" (all listed above)" if len(problems) > 1 else ""))


def decode_mask(path: Path, spec: ClassSpec) -> np.ndarray:
    """``(H, W)`` uint8 class ids (IGNORE for ignored pixels) of the mask file at ``path``."""
    arr, kind = read_mask_array(path)
    if kind == "rgb" and spec.binary:
        arr = (arr > 0).astype(np.int32)  # a black-and-white mask saved as RGB
    elif kind == "rgb":
        table = spec.colour_ids()
        colours = np.asarray(sorted(table))
        pos = np.clip(np.searchsorted(colours, arr), 0, len(colours) - 1)
        out = np.asarray([table[c] for c in colours.tolist()], np.uint8)[pos]
        out[colours[pos] != arr] = IGNORE  # unknown colours (reported by the checks) count for nothing
        return out
    out = spec.value_lut()[arr]
    out[out == UNKNOWN] = IGNORE
    return out


def class_pixel_stats(infos: Sequence[MaskInfo], spec: ClassSpec) -> tuple[np.ndarray, np.ndarray]:
    """Per class: pixels of the class, and pixels of the images where the class appears (float64 each)."""
    n = len(spec.names)
    pixels, image_pixels = np.zeros(n), np.zeros(n)
    lut, colour_ids = spec.value_lut(), spec.colour_ids()
    for info in infos:
        per_class = np.zeros(n)
        for value, count in info.counts.items():
            if info.kind == "rgb":
                cid = int(value > 0) if spec.binary else colour_ids.get(value, IGNORE)
            else:
                cid = int(lut[value]) if 0 <= value < len(lut) else IGNORE
            if cid < n:  # IGNORE and UNKNOWN count for no class
                per_class[cid] += count
        labelled = per_class.sum()
        pixels += per_class
        image_pixels += np.where(per_class > 0, labelled, 0)
    return pixels, image_pixels


def class_weights(kind: str, pixels: np.ndarray, image_pixels: np.ndarray) -> list[float] | None:
    """Loss weights per class. ``median``: SegNet's median frequency balancing, median(f) / f_c with
    f_c = pixels of c / pixels of the images containing c; ``inverse``: total / (C * pixels of c);
    ``none``: no weights; or a comma-separated list of numbers."""
    if kind == "none":
        return None
    if kind in ("median", "inverse"):
        if (pixels == 0).any():
            LOGGER.warning("warning: %d class(es) never appear in the training masks; their weight is set to 0",
                           int((pixels == 0).sum()))
        present = pixels > 0
        if kind == "median":
            freq = np.where(present, pixels / np.maximum(image_pixels, 1), 0)
            w = np.where(present, np.median(freq[present]) / np.maximum(freq, 1e-12), 0)
        else:
            w = np.where(present, pixels.sum() / (present.sum() * np.maximum(pixels, 1)), 0)
        return [round(float(x), 6) for x in w]
    try:
        w = [float(x) for x in kind.split(",")]
    except ValueError:
        raise CnnkitError(f"--class-weights: expected none, median, inverse or numbers 'w0,w1,...', got '{kind}'"
                          ) from None
    if len(w) != len(pixels):
        raise CnnkitError(f"--class-weights: {len(w)} weights given for {len(pixels)} classes; give one per class")
    if not all(np.isfinite(x) and x >= 0 for x in w) or not any(x > 0 for x in w):
        raise CnnkitError(f"--class-weights {kind}: weights must be finite, 0 or more, and not all 0")
    return w

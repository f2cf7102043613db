"""Objects and clicks for training and scoring click models (numpy and scipy, no torch).

An image's objects are one ``(H, W)`` int32 map: 0 for what is no object (background), -1 for ignored pixels
(an ignore label, a crowd region), k > 0 for object k. From class masks each connected region (8-connected) of
a class that is not background is an object; from instance data each annotated object is.

Training clicks follow RITM's sampler in spirit (Sofiiuk et al. 2021, ``MultiPointSampler``): 1-3 positive
clicks inside the object away from its edge, 0-2 negative clicks in a band around it.
"""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage

from cnnkit.data.instance import Objects, read_id_map, slice_padded
from cnnkit.data.masks import IGNORE, ClassSpec, decode_mask
from cnnkit.metrics.clicks import Click

IGNORED = -1  # object map value of ignored pixels
EIGHT = np.ones((3, 3), bool)  # 8-connectivity: a thin pole drawn in diagonal steps stays one object
BACKGROUND_NAMES = ("background", "_background_", "bg", "void", "unlabelled", "unlabeled", "unknown", "other")
# augment preset -> (zoom range of the crop, horizontal flip, vertical flip)
PRESETS = {"none": ((1.0, 1.0), False, False), "light": ((0.8, 1.25), True, False),
           "standard": ((0.67, 1.5), True, True), "strong": ((0.5, 2.0), True, True)}


def background_classes(spec: ClassSpec) -> set[int]:
    """Class ids that are no object: named background (void, unlabelled, ...), a binary spec's class 0, and
    class 0 of classes named after mask values (class_0, 0)."""
    names = [n.lower() for n in spec.names]
    found = {i for i, n in enumerate(names) if n in BACKGROUND_NAMES}
    if spec.binary or (names and names[0] in ("class_0", "0")):
        found.add(0)
    return found


def region_map(ids: np.ndarray, background: Collection[int]) -> np.ndarray:
    """Class ids ``(H, W)`` (IGNORE = ignored) -> the object map: each connected region of a class not in
    ``background`` one object, numbered class by class."""
    out = np.zeros(ids.shape, np.int32)
    out[ids == IGNORE] = IGNORED
    count = 0
    for c in np.unique(ids):
        if int(c) in background or c == IGNORE:
            continue
        labels, n = ndimage.label(ids == c, structure=EIGHT)
        found = labels > 0
        out[found] = labels[found] + count
        count += n
    return out


def segment_objects(mask: Path | np.ndarray, spec: ClassSpec, background: Collection[int]) -> np.ndarray:
    """The object map of one class mask: a file (decoded by ``spec``) or class ids in memory."""
    ids = decode_mask(mask, spec) if isinstance(mask, Path) else mask
    return region_map(ids, background)


def instance_objects(objects: Objects) -> np.ndarray:
    """The object map of one image's annotated objects: an instance map as it is (ids kept), or the objects
    painted in order (a later object over an earlier one); crowd regions ignored."""
    if objects.id_map is not None:
        ids = read_id_map(Path(objects.id_map)) if isinstance(objects.id_map, (str, Path)) else objects.id_map
        return ids.astype(np.int32)
    h, w = objects.size
    found = objects.window((0, 0, h, w), masks=True)
    out = np.zeros((h, w), np.int32)
    for k, (mask, crowd) in enumerate(zip(found["masks"], found["crowd"]), 1):
        out[mask > 0] = IGNORED if crowd else k
    return out


def scale_objects(objects: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """An object map resized (nearest) to ``size`` (H, W)."""
    if objects.shape == tuple(size):
        return objects
    return np.asarray(Image.fromarray(objects).resize((size[1], size[0]), Image.NEAREST), np.int32)


def scale_image(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """An ``(H, W, C)`` uint8 image resized (bilinear, as ``resized_array``) to ``size`` (H, W)."""
    if image.shape[:2] == tuple(size):
        return image
    picture = Image.fromarray(image.squeeze(-1) if image.shape[-1] == 1 else image)
    out = np.array(picture.resize((size[1], size[0]), Image.BILINEAR))
    return out[..., None] if out.ndim == 2 else out


def object_areas(objects: np.ndarray) -> dict[int, int]:
    """{object id: pixels} of the objects present."""
    counts = np.bincount(objects[objects > 0].ravel())
    return {int(k): int(counts[k]) for k in np.flatnonzero(counts)}


def crop_object(image: np.ndarray, objects: np.ndarray, target: int, crop: tuple[int, int], preset: str,
                rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A ``crop`` (H, W) window holding object ``target`` (shrunk when larger than the crop), zoomed by the
    ``preset``'s range and flipped: ``(h, w, C)`` uint8 image and ``(h, w)`` uint8 mask (1 the object, 0 not,
    IGNORE for ignored pixels and the padding beyond the image)."""
    zoom, hflip, vflip = PRESETS[preset]
    ys, xs = np.nonzero(objects == target)
    y0, y1, x0, x1 = int(ys.min()), int(ys.max()) + 1, int(xs.min()), int(xs.max()) + 1
    scale = min(float(np.exp(rng.uniform(*np.log(zoom)))), crop[0] / (y1 - y0), crop[1] / (x1 - x0))
    wh, ww = max(y1 - y0, round(crop[0] / scale)), max(x1 - x0, round(crop[1] / scale))
    top = _start(y0, y1, wh, objects.shape[0], rng)
    left = _start(x0, x1, ww, objects.shape[1], rng)
    window = (top, left, wh, ww)
    label = np.where(objects == target, 1, np.where(objects < 0, IGNORE, 0)).astype(np.uint8)
    inside = np.ones(objects.shape, np.uint8)
    picture = scale_image(slice_padded(image, window), crop)
    mask = scale_mask(slice_padded(label, window), crop)
    mask[scale_mask(slice_padded(inside, window), crop) == 0] = IGNORE
    if hflip and rng.random() < 0.5:
        picture, mask = picture[:, ::-1], mask[:, ::-1]
    if vflip and rng.random() < 0.5:
        picture, mask = picture[::-1], mask[::-1]
    return np.ascontiguousarray(picture), np.ascontiguousarray(mask)


def _start(lo: int, hi: int, length: int, size: int, rng: np.random.Generator) -> int:
    """A window start holding ``[lo, hi)`` in a window of ``length``, inside ``[0, size)`` where it fits there."""
    first, last = hi - length, lo
    if length <= size:
        first, last = max(first, 0), min(last, size - length)
    return int(rng.integers(first, last + 1))


def scale_mask(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A uint8 mask resized (nearest) to ``size`` (H, W)."""
    if mask.shape == tuple(size):
        return mask.copy()
    return np.array(Image.fromarray(mask).resize((size[1], size[0]), Image.NEAREST))


def random_clicks(mask: np.ndarray, rng: np.random.Generator, positives: int = 3, negatives: int = 2
                  ) -> list[Click]:
    """1..``positives`` positive clicks inside the object (``mask == 1``) at least a quarter of its depth from
    its edge, and 0..``negatives`` negative clicks on valid pixels 3 px to max(10 px, its radius) outside it."""
    obj = mask == 1
    depth = np.asarray(ndimage.distance_transform_edt(np.pad(obj, 1)))[1:-1, 1:-1]
    inner = np.argwhere(depth >= max(1.0, 0.25 * float(depth.max())))
    clicks = [Click(int(y), int(x), True)
              for y, x in inner[rng.choice(len(inner), min(len(inner), int(rng.integers(1, positives + 1))),
                                           replace=False)]]
    away = np.asarray(ndimage.distance_transform_edt(~obj))
    reach = max(10.0, float(np.sqrt(obj.sum() / np.pi)))
    band = np.argwhere((away > 3) & (away <= reach) & (mask != IGNORE))
    wanted = min(len(band), int(rng.integers(0, negatives + 1)))
    if wanted:
        clicks += [Click(int(y), int(x), False) for y, x in band[rng.choice(len(band), wanted, replace=False)]]
    return clicks


def to_working(click: Click, full: tuple[int, int], working: tuple[int, int]) -> Click:
    """A click in full-size pixels -> the same place at the working size (pixel centres mapped)."""
    y = min(working[0] - 1, max(0, int((click.y + 0.5) * working[0] / full[0])))
    x = min(working[1] - 1, max(0, int((click.x + 0.5) * working[1] / full[1])))
    return Click(y, x, click.positive)

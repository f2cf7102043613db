"""What the click API takes, checked once: images as ``(H, W, 3)`` uint8, clicks as :class:`Click`, a
previous mask as bool ``(H, W)``. Torch-free, and free of ``cnnkit.loading`` (which uses it for
``Model.click``), so that no import cycle runs through the loader."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from cnnkit.data.images import as_pil, pil_to_array
from cnnkit.errors import CnnkitError
from cnnkit.metrics.clicks import Click

ClickLike = Any  # a Click, an (x, y, positive) tuple or a {"x", "y", "positive"} mapping


def as_image_array(image: str | Path | Image.Image | np.ndarray) -> np.ndarray:
    """A path, PIL image or array -> ``(H, W, 3)`` uint8 (upright, as cnnkit's readers see the file).
    CnnkitError for unreadable files and arrays of no image type."""
    if isinstance(image, np.ndarray) and image.ndim == 3 and image.shape[-1] == 3 and image.dtype == np.uint8:
        return image
    return pil_to_array(as_pil(image), 3)


def as_click(item: ClickLike, shape: tuple[int, int]) -> Click:
    """One click in image pixels, inside an image of ``shape`` ``(H, W)``. Tuples are ``(x, y, positive)``
    (x the column, as a pointer event gives it). CnnkitError naming the click otherwise."""
    if isinstance(item, Click):
        click = item
    else:
        try:
            if isinstance(item, Mapping):
                x, y, positive = item["x"], item["y"], item.get("positive", True)
            else:
                x, y, positive = item
            if isinstance(x, bool) or isinstance(y, bool) or float(x) != int(x) or float(y) != int(y):
                raise ValueError("coordinates are whole pixels")
            click = Click(y=int(y), x=int(x), positive=bool(positive))
        except (TypeError, ValueError, KeyError):
            raise CnnkitError(f"click {item!r}: give a Click or (x, y, positive) with whole pixel coordinates "
                              "and positive True (on the object) or False") from None
    h, w = shape
    if not (0 <= click.y < h and 0 <= click.x < w):
        raise CnnkitError(f"click at x={click.x}, y={click.y}: outside the {w}x{h} image; click inside it "
                          "(x the column 0..W-1, y the row 0..H-1)")
    return click


def as_clicks(items: Sequence[ClickLike], shape: tuple[int, int]) -> list[Click]:
    """Every click checked with :func:`as_click`."""
    if isinstance(items, (str, bytes)) or not isinstance(items, Sequence):
        raise CnnkitError(f"clicks: a list of clicks, got {type(items).__name__}; pass [Click(...)] or "
                          "[(x, y, positive), ...]")
    return [as_click(item, shape) for item in items]


def as_prev(prev: np.ndarray | None, shape: tuple[int, int]) -> np.ndarray | None:
    """The previous mask as bool ``(H, W)`` (non-zero = object), or None. CnnkitError on another size."""
    if prev is None:
        return None
    arr = np.asarray(prev)
    if arr.shape != tuple(shape):
        raise CnnkitError(f"prev_mask: shape {list(arr.shape)} but the image is {list(shape)} (H, W); pass the "
                          "mask the last call returned, or None")
    return arr.astype(bool, copy=False)

"""Annotation with clicks: a click model (or the seeded method of ``cnnkit.grow``) turns clicks into an
object's mask (:func:`click_mask`, ``Model.click``), and :class:`AnnotationStore` writes the accepted
objects as a data set that ``cnnkit train segment`` / ``instance`` reads. ``cnnkit annotate`` is the page
over these."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from cnnkit.annotate.clickers import Clicker, ModelClicker, SeedClicker, load_clicker
from cnnkit.annotate.inputs import ClickLike, as_clicks, as_image_array, as_prev
from cnnkit.annotate.store import AnnotationStore

if TYPE_CHECKING:
    from cnnkit.loading import Model


def click_mask(image: str | Path | Image.Image | np.ndarray, clicks: Sequence[ClickLike],
               prev_mask: np.ndarray | None = None, *, weights: str | Path | Model | None = None,
               threshold: float = 0.5) -> np.ndarray:
    """The mask of the object that ``clicks`` point at, bool ``(H, W)`` at the image's size.

    image: a path, PIL image or ``(H, W[, 3])`` array. clicks: :class:`cnnkit.Click` (``y``, ``x`` in
    pixels, ``positive``) or ``(x, y, positive)`` tuples: positive on the object, negative off it.
    prev_mask: the mask the last call gave (a click model corrects it; the seeded method ignores it).
    weights: a click model's best.pt, or a loaded ``cnnkit.load(...)`` click model (load it once for many
    calls), or None for the seeded method of ``cnnkit.grow`` (about 1-2 s a call on a CPU). threshold: the
    click model's probability above which a pixel is the object. CnnkitError for clicks outside the image, a
    prev_mask of another size, or weights that are not a click model.
    """
    array = as_image_array(image)
    shape = (int(array.shape[0]), int(array.shape[1]))
    chosen = as_clicks(clicks, shape)
    prev = as_prev(prev_mask, shape)
    return load_clicker(weights, threshold)(array, chosen, prev)


__all__ = ["AnnotationStore", "Clicker", "ModelClicker", "SeedClicker", "click_mask", "load_clicker"]

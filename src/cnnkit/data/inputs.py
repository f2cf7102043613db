"""What a model was trained on (image sizes, channels, bit depth, brightness), and a watch that
warns once, in one line per kind, when inputs fall far outside it.

``describe_inputs`` runs at training and is saved in the checkpoint's and the export's meta as
``inputs``; ``InputWatch`` runs in ``predict``, ``val`` and the server. A model trained on grey
fluorescence and sent a colour slide, or trained on 8-bit photos and sent a 16-bit scan, still
answers, but its answer may be worthless: the user should hear it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from PIL import Image

from cnnkit.data.images import HIGH_BIT_MODES as HIGH_BIT
from cnnkit.data.images import UNREADABLE
from cnnkit.log import LOGGER
from cnnkit.meta import ModelMeta

SAMPLE = 100  # training images described
SIZE_FACTOR = 4  # an image side this many times beyond the training sides is "far"
BRIGHTNESS_MARGIN = 0.15  # beyond the training images' range of mean brightness (0..1) by this is "far"


def _open(image: Any) -> Image.Image | None:
    if isinstance(image, Image.Image):
        return image
    if isinstance(image, np.ndarray):
        return Image.fromarray(image.squeeze(-1) if image.ndim == 3 and image.shape[-1] == 1 else image)
    try:
        with Image.open(image) as im:
            im.load()
            return im
    except UNREADABLE:
        return None


def _is_colour(im: Image.Image) -> bool:
    if im.mode in ("L", "LA", "1", *HIGH_BIT):
        return False
    small = np.asarray(im.convert("RGB").resize((32, 32)), np.int16)
    return bool(np.abs(small - small.mean(-1, keepdims=True)).max() > 8)  # grey saved as RGB is not colour


def _brightness(im: Image.Image, high: float) -> float:
    if im.mode in HIGH_BIT:
        top = high or (1.0 if im.mode == "F" else 65535.0)
        return float(np.clip(np.asarray(im, np.float32) / top, 0, 1).mean())
    return float(np.asarray(im.convert("L").resize((64, 64)), np.float32).mean() / 255)


def describe_inputs(images: list, high: float = 0.0) -> dict[str, Any]:
    """Sizes, colour, bit depth and brightness of up to SAMPLE training images (paths, PIL or arrays)."""
    pick = [images[int(i)] for i in np.linspace(0, len(images) - 1, min(SAMPLE, len(images))).astype(int)] \
        if images else []
    sides, colour, deep, bright = [], 0, 0, []
    for item in pick:
        im = _open(item)
        if im is None:
            continue
        sides += list(im.size)
        colour += _is_colour(im)
        deep += im.mode in HIGH_BIT
        bright.append(_brightness(im, high))
    if not sides:
        return {}
    return {"images": len(bright), "side_range": [min(sides), max(sides)], "colour_share": colour / len(bright),
            "high_bit_share": deep / len(bright),
            "brightness_range": [round(float(np.percentile(bright, 1)), 4), round(float(np.percentile(bright, 99)), 4)]}


class InputWatch:
    """``check(image)`` warns once per kind when an input is far from what the model trained on."""

    def __init__(self, meta: ModelMeta):
        self.seen = meta.inputs or {}
        self.high = meta.pixel_max
        self.said: set[str] = set()

    def check(self, image: Any, name: str = "") -> list[str]:
        """What is far off for this image, one line each (each kind warned the first time only)."""
        found = self.far_off(image)
        for kind, text in found:
            if kind not in self.said:
                self.said.add(kind)
                LOGGER.warning("warning: %s: %s; its results may be wrong (said once)", name or "input", text)
        return [text for _, text in found]

    def far_off(self, image: Any) -> list[tuple[str, str]]:
        """(kind, line) of what is far off for this image: size, colour, grey, bits, dark or bright; not warned."""
        if not self.seen:
            return []
        im = _open(image)
        if im is None:
            return []
        found = []
        lo, hi = self.seen["side_range"]
        if min(im.size) < lo / SIZE_FACTOR or max(im.size) > hi * SIZE_FACTOR:
            seen = f"{lo} px" if lo == hi else f"{lo} to {hi} px"
            found.append(("size", f"{im.size[0]}x{im.size[1]} px, where the training images' sides were {seen}"))
        colour = _is_colour(im)
        if colour and self.seen["colour_share"] == 0:
            found.append(("colour", "a colour image, where the model trained on grey images only (it sees it "
                                    "turned grey)"))
        elif not colour and self.seen["colour_share"] == 1:
            found.append(("grey", "a grey image, where the model trained on colour images only"))
        deep = im.mode in HIGH_BIT
        if deep and self.seen["high_bit_share"] == 0:
            found.append(("bits", f"a {im.mode} (more than 8-bit) image, where the model trained on 8-bit images"))
        elif not deep and self.seen["high_bit_share"] == 1 and not isinstance(image, np.ndarray):
            found.append(("bits", "an 8-bit image, where the model trained on 16-bit images"))
        b_lo, b_hi = self.seen["brightness_range"]
        b = _brightness(im, self.high)
        if b < b_lo - BRIGHTNESS_MARGIN or b > b_hi + BRIGHTNESS_MARGIN:
            found.append(("dark" if b < b_lo else "bright", f"mean brightness {b:.2f}, where the training images "
                                                            f"had {b_lo:.2f} to {b_hi:.2f} (0..1)"))
        return found


def source_images(dataset: Any) -> list:
    """The images behind one of cnnkit's datasets (paths, or arrays when decoded in memory)."""
    if hasattr(dataset, "source_images"):  # a dataset that says (pretrain's)
        return dataset.source_images()
    if hasattr(dataset, "items"):  # instance
        return [item.image for item in dataset.items]
    split = getattr(dataset, "split", None)  # classify
    if split is not None:
        return list(split.paths) if split.paths is not None else []
    return list(getattr(dataset, "images", []))


__all__ = ["describe_inputs", "InputWatch", "source_images"]

"""Pictures of segmentation results: colour masks, overlays with a class legend, and the PNG files."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from cnnkit.data.masks import IGNORE
from cnnkit.meta import ModelMeta
from cnnkit.tasks.common import save_png


def colour_lut(colours: list) -> np.ndarray:
    """``(256, 3)`` uint8: class id -> colour; ids without a class (IGNORE) are black."""
    lut = np.zeros((256, 3), np.uint8)
    lut[: len(colours)] = np.asarray(colours, dtype=np.uint8).reshape(-1, 3)
    lut[IGNORE] = 0
    return lut


def colour_mask(ids: np.ndarray, meta: ModelMeta) -> Image.Image:
    return Image.fromarray(colour_lut(list(meta.colours))[ids])


def overlay(image: Image.Image, ids: np.ndarray, meta: ModelMeta, alpha: float = 0.5) -> Image.Image:
    """The image with each class's colour blended in (not over 'background'), and a legend of the
    classes present, largest first."""
    base = np.asarray(image.convert("RGB"), dtype=np.float32)
    colours = colour_lut(list(meta.colours))[ids].astype(np.float32)
    names = list(meta.classes)
    blend = np.ones(ids.shape, bool)
    if names and names[0].lower() in ("background", "bg", "_background_"):
        blend &= ids != 0
    blend &= ids != IGNORE
    out = np.where(blend[..., None], (1 - alpha) * base + alpha * colours, base)
    picture = Image.fromarray(out.clip(0, 255).astype(np.uint8))
    if max(picture.size) < 256:  # small images: enlarge so that the legend stays readable
        scale = 256 / max(picture.size)
        picture = picture.resize((round(picture.width * scale), round(picture.height * scale)), Image.NEAREST)
    counts = np.bincount(ids.ravel(), minlength=256)[: len(names)]
    present = [int(i) for i in np.argsort(-counts) if counts[i] > 0][:12]
    draw = ImageDraw.Draw(picture)
    for row, cid in enumerate(present):
        y = 4 + 13 * row
        draw.rectangle([4, y, 14, y + 10], fill=tuple(int(c) for c in meta.colours[cid]), outline=(255, 255, 255))
        draw.text((18, y - 1), f"{names[cid]} {counts[cid] / ids.size:.0%}", fill=(255, 255, 255),
                  stroke_width=1, stroke_fill=(0, 0, 0))
    return picture


def index_mask_image(ids: np.ndarray, meta: ModelMeta) -> Image.Image:
    """Class ids written back in the data set's own values: a palette PNG (values = indices, as VOC),
    16-bit for values above 255, and 0/255 for binary masks."""
    if meta.value("binary", False):
        return Image.fromarray(np.where(ids == 1, 255, 0).astype(np.uint8), "L")
    own = list(meta.value("values", list(range(meta.num_classes))))
    values = np.asarray(own + [0] * (256 - len(own)), dtype=np.int64)
    values[IGNORE] = meta.value("ignore_index", 255)
    raw = values[ids]
    if raw.max(initial=0) > 255:
        return Image.fromarray(raw.astype(np.uint16))
    picture = Image.fromarray(raw.astype(np.uint8), "P")
    palette = np.zeros((256, 3), np.uint8)
    for value, colour in zip(own, meta.colours):
        palette[value] = colour
    picture.putpalette(palette.ravel().tolist())
    return picture


def write_segment_outputs(image: Image.Image, prediction: dict, meta: ModelMeta, folder: Path, stem: str,
                          pictures: bool = True) -> dict[str, str]:
    """<stem>_mask.png always; <stem>_color.png and <stem>_overlay.png unless ``pictures`` is off;
    <stem>_probs.npy (float16, (K, H, W)) when the prediction holds probabilities."""
    ids = prediction["mask"]
    written = {"mask": folder / f"{stem}_mask.png"}
    save_png(index_mask_image(ids, meta), written["mask"])
    if pictures:
        written["color"] = folder / f"{stem}_color.png"
        written["overlay"] = folder / f"{stem}_overlay.png"
        save_png(colour_mask(ids, meta), written["color"])
        save_png(overlay(image, ids, meta), written["overlay"])
    if prediction.get("probs") is not None:
        written["probs"] = folder / f"{stem}_probs.npy"
        partial = folder / f".{stem}_probs.npy.partial"
        with partial.open("wb") as f:  # written beside, then renamed: never a half-written file
            np.save(f, prediction["probs"])
        os.replace(partial, written["probs"])
    return {k: str(v) for k, v in written.items()}

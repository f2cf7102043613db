"""Click models' output side, without torch: one clicked object's mask as a record, a line, a CSV row, an
overlay (the mask, with the positive clicks green and the negative ones red) and a PNG.

A prediction is ``{"mask": (H, W) bool, "size": [W, H], "area": fraction of the image, "clicks": [[x, y,
positive], ...]}`` (optionally ``"probability"``: ``(H, W)`` float32). Click models answer clicks
(``task.predict_clicks``, ``cnnkit annotate``, ``cnnkit.click_mask``), not ``cnnkit predict``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from cnnkit.meta import ModelMeta
from cnnkit.tasks.common import save_png

MASK_COLOUR = (30, 144, 255)
CLICK_COLOURS = {True: (0, 220, 0), False: (230, 0, 0)}


class ClickView:
    """One object's mask: its area, the overlay and the mask file."""

    field_notes = {"probability": "predict_clicks returns it; a mask alone has none"}

    def __init__(self, spec: Any):
        self.name = spec.name

    @staticmethod
    def fields(prediction: dict) -> dict[str, Callable[[], Any]]:
        """mask: the object's pixels, bool (H, W); probability: (H, W) float32 where given."""
        return {"mask": lambda: prediction.get("mask"), "probability": lambda: prediction.get("probability")}

    @staticmethod
    def table(prediction: dict) -> dict[str, list]:
        return {"area": [prediction["area"]], "clicks": [len(prediction.get("clicks", []))]}

    @staticmethod
    def record(prediction: dict) -> dict:
        return {"size": prediction["size"], "area": prediction["area"], "clicks": prediction.get("clicks", [])}

    @staticmethod
    def describe(prediction: dict) -> str:
        return f"object {prediction['area']:.1%} of the image after {len(prediction.get('clicks', []))} click(s)"

    @staticmethod
    def csv_row(prediction: dict) -> dict[str, str]:
        return {"area": f"{prediction['area']:.6f}", "clicks": str(len(prediction.get("clicks", [])))}

    @staticmethod
    def visualise(image: Image.Image, prediction: dict, meta: ModelMeta) -> Image.Image:
        return overlay(image, np.asarray(prediction["mask"], bool), prediction.get("clicks", []))

    @staticmethod
    def write_outputs(image: Image.Image, prediction: dict, meta: ModelMeta, folder: Path, stem: str,
                      pictures: bool = True) -> dict[str, str]:
        folder.mkdir(parents=True, exist_ok=True)
        mask_path = folder / f"{stem}_mask.png"
        save_png(Image.fromarray(np.asarray(prediction["mask"], bool).astype(np.uint8) * 255, "L"), mask_path)
        out = {"mask": str(mask_path)}
        if pictures:
            picture = folder / f"{stem}_overlay.png"
            save_png(overlay(image, np.asarray(prediction["mask"], bool), prediction.get("clicks", [])), picture)
            out["overlay"] = str(picture)
        return out

    @staticmethod
    def write_results(records: list[dict], meta: ModelMeta, folder: Path) -> None:
        return None


def overlay(image: Image.Image, mask: np.ndarray, clicks: list, alpha: float = 0.5) -> Image.Image:
    """``image`` with ``mask`` (H, W) blended in blue and each click ``[x, y, positive]`` a dot (green on the
    object, red off it)."""
    base = np.asarray(image.convert("RGB"), dtype=np.float32)
    out = np.where(mask[..., None], (1 - alpha) * base + alpha * np.asarray(MASK_COLOUR, np.float32), base)
    picture = Image.fromarray(out.clip(0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(picture)
    r = max(3, round(max(picture.size) / 120))
    for x, y, positive in clicks:
        draw.ellipse([x - r, y - r, x + r, y + r], fill=CLICK_COLOURS[bool(positive)], outline=(255, 255, 255))
    return picture

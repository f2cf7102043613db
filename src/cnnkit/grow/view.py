"""How a grown segmentation reads as a :class:`cnnkit.Result`: segmentation's view, plus the confidence,
the segment count and the seeds (torch-free)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from cnnkit.meta import ModelMeta
from cnnkit.predictor import View
from cnnkit.tasks import get_view
from cnnkit.tasks.common import save_png

SEGMENT = "segment"  # a grown map is a segmentation: drawn, tabled and written as one


class GrowView:
    """Segmentation's view with ``confidence`` (``(H, W)`` float32), ``segments`` and ``seeds`` added."""

    field_notes = {"probs": "segments grown from the image keep no probabilities; read .confidence"}

    def __init__(self) -> None:
        self.base: View = get_view(SEGMENT)
        self.name = SEGMENT

    def fields(self, prediction: dict) -> dict[str, Callable[[], Any]]:
        return {**self.base.fields(prediction), "confidence": lambda: prediction.get("confidence")}  # type: ignore[attr-defined]

    def table(self, prediction: dict) -> dict[str, list]:
        return self.base.table(prediction)  # type: ignore[attr-defined]

    def record(self, prediction: dict) -> dict:
        return {**self.base.record(prediction), "segments": prediction["segments"],
                "mean_confidence": round(float(prediction["confidence"].mean()), 4),
                "seeded_pixels": prediction["seeded_pixels"]}

    def describe(self, prediction: dict) -> str:
        return f"{prediction['segments']} segments ({self.base.describe(prediction)})"

    def csv_row(self, prediction: dict) -> dict[str, str]:
        return self.base.csv_row(prediction)

    def visualise(self, image: Image.Image, prediction: dict, meta: ModelMeta) -> Image.Image:
        return self.base.visualise(image, prediction, meta)

    def write_outputs(self, image: Image.Image, prediction: dict, meta: ModelMeta, folder: Path, stem: str,
                      pictures: bool = True) -> dict[str, str]:
        """The segment files (``<stem>_mask.png``, ``_color.png``, ``_overlay.png``) and
        ``<stem>_confidence.png`` (8-bit, 255 = certain)."""
        written = self.base.write_outputs(image, prediction, meta, folder, stem, pictures)
        path = folder / f"{stem}_confidence.png"
        save_png(confidence_image(prediction["confidence"]), path)
        return {**written, "confidence": str(path)}

    def write_results(self, records: list[dict], meta: ModelMeta, folder: Path) -> None:
        return None


def confidence_image(confidence: np.ndarray) -> Image.Image:
    """``(H, W)`` float in [0, 1] -> an 8-bit grey picture (0 = no confidence, 255 = certain)."""
    return Image.fromarray(np.round(np.clip(confidence, 0, 1) * 255).astype(np.uint8), "L")

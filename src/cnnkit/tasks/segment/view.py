"""Semantic segmentation's output side, without torch: records, console lines, CSV rows, pictures, masks."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from cnnkit.meta import ModelMeta
from cnnkit.tasks.segment import draw


def class_areas(ids: np.ndarray, classes: list[str]) -> dict[str, float]:
    """Class ids ``(H, W)`` -> {class: fraction of the image}, largest first, present classes only."""
    counts = np.bincount(ids.ravel(), minlength=len(classes))[: len(classes)]
    areas = {classes[i]: round(float(c) / ids.size, 6) for i, c in enumerate(counts) if c}
    return dict(sorted(areas.items(), key=lambda kv: -kv[1]))


class SegmentView:
    """Class maps: areas, console lines, CSV rows, the overlay, the index and colour masks."""

    field_notes = {"probs": "pass probs=True to predict with a checkpoint; exported segmenters keep none"}

    def __init__(self, spec: Any):
        self.name = spec.name

    @staticmethod
    def fields(prediction: dict) -> dict[str, Callable[[], Any]]:
        """mask: the class index of every pixel; probs (checkpoints with ``probs=True``): ``(K, H, W)``."""
        return {"mask": lambda: prediction.get("mask"), "probs": lambda: prediction.get("probs")}

    @staticmethod
    def table(prediction: dict) -> dict[str, list]:
        """Each class's share of the pixels."""
        return {"class": list(prediction["areas"]), "area": list(prediction["areas"].values())}

    @staticmethod
    def record(prediction: dict) -> dict:
        """The JSON-able part of a prediction."""
        return {"size": prediction["size"], "areas": prediction["areas"]}

    @staticmethod
    def describe(prediction: dict) -> str:
        return ", ".join(f"{name} {area:.0%}" for name, area in list(prediction["areas"].items())[:4])

    @staticmethod
    def csv_row(prediction: dict) -> dict[str, str]:
        return {"areas": ";".join(f"{name}:{area:.4f}" for name, area in prediction["areas"].items())}

    @staticmethod
    def visualise(image: Image.Image, prediction: dict, meta: ModelMeta) -> Image.Image:
        return draw.overlay(image, prediction["mask"], meta)

    @staticmethod
    def write_outputs(image: Image.Image, prediction: dict, meta: ModelMeta, folder: Path, stem: str,
                      pictures: bool = True) -> dict[str, str]:
        return draw.write_segment_outputs(image, prediction, meta, folder, stem, pictures)

    @staticmethod
    def write_results(records: list[dict], meta: ModelMeta, folder: Path) -> None:
        return None

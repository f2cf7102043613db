"""Instance segmentation's and detection's output side, without torch: records, console lines, CSV rows,
pictures, instance maps and COCO results."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from cnnkit.data.rle import decode_rle
from cnnkit.meta import ModelMeta
from cnnkit.tasks.instance import draw


def object_masks(instances: list[dict], size: list[int]) -> np.ndarray:
    """``(N, H, W)`` bool mask of each object that has one, at the image's ``size`` (width, height)."""
    width, height = size
    decoded = [decode_rle(i["rle"]).astype(bool) for i in instances if "rle" in i]
    return np.stack(decoded) if decoded else np.zeros((0, height, width), bool)


class InstanceView:
    """Instances (``instance``, with masks) or boxes only (``detect``)."""

    def __init__(self, spec: Any):
        self.name, self.masks = spec.name, bool(spec.args.get("masks", True))

    @staticmethod
    def record(prediction: dict) -> dict:
        return {"size": prediction["size"], "instances": prediction["instances"]}

    def fields(self, prediction: dict) -> dict[str, Callable[[], Any]]:
        """boxes, scores, labels and (instance, not detect: detectors predict no masks) masks of the
        objects, highest score first."""
        instances = prediction["instances"]
        found: dict[str, Callable[[], Any]] = {
            "boxes": lambda: np.array([i["box"] for i in instances], np.float32).reshape(-1, 4),
            "scores": lambda: np.array([i["score"] for i in instances], np.float32),
            "labels": lambda: [i["class"] for i in instances]}
        if self.masks:
            found["masks"] = lambda: object_masks(instances, prediction["size"])
        return found

    @staticmethod
    def table(prediction: dict) -> dict[str, list]:
        """One row per object: class, score, box corners."""
        instances = prediction["instances"]
        return {"class": [i["class"] for i in instances], "score": [i["score"] for i in instances],
                **{name: [i["box"][k] for i in instances] for k, name in enumerate(("x0", "y0", "x1", "y1"))}}

    @staticmethod
    def describe(prediction: dict) -> str:
        counts: dict[str, int] = {}
        for inst in prediction["instances"]:
            counts[inst["class"]] = counts.get(inst["class"], 0) + 1
        return ", ".join(f"{n} {c}" for c, n in sorted(counts.items(), key=lambda kv: -kv[1])) or "no objects"

    @staticmethod
    def csv_row(prediction: dict) -> dict[str, str]:
        scores = [i["score"] for i in prediction["instances"]]
        return {"objects": str(len(scores)), "mean_score": f"{np.mean(scores):.4f}" if scores else ""}

    @staticmethod
    def visualise(image: Image.Image, prediction: dict, meta: ModelMeta) -> Image.Image:
        return draw.overlay(image, prediction["instances"], meta)

    @staticmethod
    def write_outputs(image: Image.Image, prediction: dict, meta: ModelMeta, folder: Path, stem: str,
                      pictures: bool = True) -> dict[str, str]:
        return draw.write_instance_outputs(image, prediction, meta, folder, stem, pictures)

    @staticmethod
    def write_results(records: list[dict], meta: ModelMeta, folder: Path) -> Path:
        """COCO results JSON (RLE masks) for all predicted images."""
        return draw.write_results(records, meta, folder)

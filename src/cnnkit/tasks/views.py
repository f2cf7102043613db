"""The output side of each task, without torch: records, console lines, CSV rows, pictures, files.

The task classes (which train and predict with torch) subclass these, and the ONNX runtime path
(``cnnkit.export.runtime``) uses them alone, so that predicting with an .onnx file never imports torch.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from cnnkit.errors import CnnkitError
from cnnkit.tasks import inst_draw, seg_draw


def topk_records(probs: np.ndarray, classes: list[str], k: int) -> list[dict]:
    """Probabilities ``(N, K)`` -> per image the best class, its index and score, and the top ``k``."""
    k = max(1, min(k, probs.shape[1]))
    order = np.argsort(-probs, axis=1, kind="stable")[:, :k]
    return [{"class": classes[int(ix[0])], "index": int(ix[0]), "score": float(p[ix[0]]),
             "topk": [{"class": classes[int(i)], "index": int(i), "score": float(p[i])} for i in ix]}
            for p, ix in zip(probs, order)]


def class_areas(ids: np.ndarray, classes: list[str]) -> dict[str, float]:
    """Class ids ``(H, W)`` -> {class: fraction of the image}, largest first, present classes only."""
    counts = np.bincount(ids.ravel(), minlength=len(classes))[: len(classes)]
    areas = {classes[i]: round(float(c) / ids.size, 6) for i, c in enumerate(counts) if c}
    return dict(sorted(areas.items(), key=lambda kv: -kv[1]))


class ClassifyView:
    name = "classify"

    @staticmethod
    def csv_row(prediction: dict) -> dict[str, str]:
        """One predictions.csv row (after the path column)."""
        return {"class": prediction["class"], "score": f"{prediction['score']:.6f}",
                "topk": ";".join(f"{t['class']}:{t['score']:.4f}" for t in prediction["topk"])}

    @staticmethod
    def record(prediction: dict) -> dict:
        """The JSON-able part of a prediction (all of it)."""
        return prediction

    @staticmethod
    def describe(prediction: dict) -> str:
        return f"{prediction['class']} ({prediction['score']:.3f})"

    def write_outputs(self, image: Image.Image, prediction: dict, meta: dict[str, Any], folder: Path, stem: str,
                      pictures: bool = True) -> dict[str, str]:
        """<stem>_pred.png: the image annotated with the top classes (unless ``pictures`` is off)."""
        if not pictures:
            return {}
        path = folder / f"{stem}_pred.png"
        seg_draw.save_png(self.visualise(image, prediction, meta), path)
        return {"image": str(path)}

    @staticmethod
    def visualise(image: Image.Image, prediction: dict, meta: dict[str, Any]) -> Image.Image:
        """The image (enlarged if small) with the top-k labels and probabilities written on it."""
        im = image.convert("RGB")
        if max(im.size) < 256:
            scale = 256 / max(im.size)
            im = im.resize((round(im.width * scale), round(im.height * scale)), Image.NEAREST)
        draw = ImageDraw.Draw(im)
        lines = [f"{t['class']} {t['score']:.2f}" for t in prediction["topk"][:3]]
        draw.rectangle([0, 0, im.width, 12 * len(lines) + 4], fill=(0, 0, 0))
        for i, line in enumerate(lines):
            draw.text((4, 2 + 12 * i), line, fill=(255, 255, 0) if i == 0 else (220, 220, 220))
        return im


class SegmentView:
    name = "segment"

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
    def visualise(image: Image.Image, prediction: dict, meta: dict[str, Any]) -> Image.Image:
        return seg_draw.overlay(image, prediction["mask"], meta)

    @staticmethod
    def write_outputs(image: Image.Image, prediction: dict, meta: dict[str, Any], folder: Path, stem: str,
                      pictures: bool = True) -> dict[str, str]:
        return seg_draw.write_segment_outputs(image, prediction, meta, folder, stem, pictures)


def check_thresholds(score_thresh: float, nms_thresh: float, max_det: int) -> None:
    """Prediction options in range, or CnnkitError naming the flag (a negative --max-det sliced off
    detections and a negative threshold kept every raw box, both silently)."""
    for flag, value in (("--score-thresh", score_thresh), ("--nms-thresh", nms_thresh)):
        if not 0 <= value <= 1:
            raise CnnkitError(f"{flag} must be in [0, 1], got {value}")
    if max_det < 0:
        raise CnnkitError(f"--max-det must be 0 (the model's limit) or more, got {max_det}")


class InstanceView:
    """Instances (``instance``, with masks) or boxes only (``detect``)."""

    def __init__(self, name: str = "instance", masks: bool = True):
        self.name, self.masks = name, masks

    @staticmethod
    def record(prediction: dict) -> dict:
        return {"size": prediction["size"], "instances": prediction["instances"]}

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
    def visualise(image: Image.Image, prediction: dict, meta: dict[str, Any]) -> Image.Image:
        return inst_draw.overlay(image, prediction["instances"], meta)

    @staticmethod
    def write_outputs(image: Image.Image, prediction: dict, meta: dict[str, Any], folder: Path, stem: str,
                      pictures: bool = True) -> dict[str, str]:
        return inst_draw.write_instance_outputs(image, prediction, meta, folder, stem, pictures)

    @staticmethod
    def write_results(records: list[dict], meta: dict[str, Any], folder: Path) -> Path:
        """COCO results JSON (RLE masks) for all predicted images."""
        return inst_draw.write_results(records, meta, folder)


VIEWS = {"classify": ClassifyView(), "segment": SegmentView(), "instance": InstanceView(),
         "detect": InstanceView("detect", masks=False)}

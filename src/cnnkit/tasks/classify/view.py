"""Classification's output side, without torch: records, console lines, CSV rows, pictures."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from cnnkit.meta import ModelMeta
from cnnkit.tasks.common import save_png


def topk_records(probs: np.ndarray, classes: list[str], k: int) -> list[dict]:
    """Probabilities ``(N, K)`` -> per image the best class, its index and score, and the top ``k``."""
    k = max(1, min(k, probs.shape[1]))
    order = np.argsort(-probs, axis=1, kind="stable")[:, :k]
    return [{"class": classes[int(ix[0])], "index": int(ix[0]), "score": float(p[ix[0]]),
             "topk": [{"class": classes[int(i)], "index": int(i), "score": float(p[i])} for i in ix],
             "probs": p.astype(np.float32)}  # every class's (the record leaves it out)
            for p, ix in zip(probs, order)]


class ClassifyView:
    """Top-k classes: records, console lines, CSV rows and the annotated picture."""

    def __init__(self, spec: Any):
        self.name = spec.name

    @staticmethod
    def csv_row(prediction: dict) -> dict[str, str]:
        """One predictions.csv row (after the path column)."""
        return {"class": prediction["class"], "score": f"{prediction['score']:.6f}",
                "topk": ";".join(f"{t['class']}:{t['score']:.4f}" for t in prediction["topk"])}

    @staticmethod
    def record(prediction: dict) -> dict:
        """The JSON-able part of a prediction: the best class and the top k (not every class's probability)."""
        return {k: v for k, v in prediction.items() if k != "probs"}

    @staticmethod
    def fields(prediction: dict) -> dict[str, Callable[[], Any]]:
        """probs: every class's probability; scores and labels: the top k's."""
        return {"probs": lambda: prediction.get("probs"),
                "scores": lambda: np.array([t["score"] for t in prediction["topk"]], np.float32),
                "labels": lambda: [t["class"] for t in prediction["topk"]]}

    @staticmethod
    def table(prediction: dict) -> dict[str, list]:
        """The top-k classes: class, index, score."""
        return {key: [t[key] for t in prediction["topk"]] for key in ("class", "index", "score")}

    @staticmethod
    def describe(prediction: dict) -> str:
        return f"{prediction['class']} ({prediction['score']:.3f})"

    def write_outputs(self, image: Image.Image, prediction: dict, meta: ModelMeta, folder: Path, stem: str,
                      pictures: bool = True) -> dict[str, str]:
        """<stem>_pred.png: the image annotated with the top classes (unless ``pictures`` is off)."""
        if not pictures:
            return {}
        path = folder / f"{stem}_pred.png"
        save_png(self.visualise(image, prediction, meta), path)
        return {"image": str(path)}

    @staticmethod
    def visualise(image: Image.Image, prediction: dict, meta: ModelMeta) -> Image.Image:
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

    @staticmethod
    def write_results(records: list[dict], meta: ModelMeta, folder: Path) -> None:
        return None

"""One image's prediction as an object: ``model.predict(...)`` returns a list of :class:`Result`.

A Result is the task's prediction dict (``r["class"]``, ``r["areas"]``, ``r["instances"]``: what the
server answers and predictions.json holds), with the image and the model card kept beside it, so that
it can be looked at (``.plot()``), written (``.save(folder)``, ``.to_json()``), tabled (``.to_pandas()``)
and read by field (``.probs``, ``.mask``, ``.boxes``, ``.masks``, ``.embedding``). Torch-free.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from cnnkit.errors import CnnkitError
from cnnkit.files import json_bytes
from cnnkit.meta import ModelMeta
from cnnkit.predictor import View


class Result(dict):
    """One image's prediction: the task's dict, plus ``image`` (PIL), ``path`` (str or None), ``meta`` (the
    model card) and the task's ``view`` (how the prediction is drawn and written)."""

    def __init__(self, prediction: dict[str, Any], image: Image.Image, view: View, meta: ModelMeta,
                 path: str | None = None):
        super().__init__(prediction)
        self.image, self.view, self.meta, self.path = image, view, meta, path

    @property
    def task(self) -> str:
        return self.meta.task

    @property
    def names(self) -> list[str]:
        """Class names, index order."""
        return list(self.meta.classes)

    # the task's fields; each raises AttributeError on a task that has no such field, as a missing attribute does
    @property
    def probs(self) -> np.ndarray:
        """classify: ``(K,)`` float32 probability of every class; segment (PyTorch only): ``(K, H, W)``."""
        return self._field("probs", ("classify", "segment"))

    @property
    def mask(self) -> np.ndarray:
        """segment: ``(H, W)`` class index of every pixel (uint8 or int64), at the image's size."""
        return self._field("mask", ("segment",))

    @property
    def boxes(self) -> np.ndarray:
        """instance/detect: ``(N, 4)`` float32 boxes (x0, y0, x1, y1) in pixels, highest score first."""
        instances = self._field("instances", ("instance", "detect"), "boxes")
        return np.array([i["box"] for i in instances], np.float32).reshape(-1, 4)

    @property
    def scores(self) -> np.ndarray:
        """instance/detect: ``(N,)`` confidence of each object; classify: of the top-k classes."""
        if self.task == "classify":
            return np.array([t["score"] for t in self["topk"]], np.float32)
        return np.array([i["score"] for i in self._field("instances", ("instance", "detect"), "scores")], np.float32)

    @property
    def labels(self) -> list[str]:
        """instance/detect: the class name of each object; classify: the top-k class names."""
        if self.task == "classify":
            return [t["class"] for t in self["topk"]]
        return [i["class"] for i in self._field("instances", ("instance", "detect"), "labels")]

    @property
    def masks(self) -> np.ndarray:
        """instance: ``(N, H, W)`` bool mask of each object at the image's size (detect: none, ``(0, H, W)``)."""
        from cnnkit.data.rle import decode_rle

        instances = self._field("instances", ("instance", "detect"), "masks")
        width, height = self["size"]
        decoded = [decode_rle(i["rle"]).astype(bool) for i in instances if "rle" in i]
        return np.stack(decoded) if decoded else np.zeros((0, height, width), bool)

    @property
    def embedding(self) -> np.ndarray:
        """pretrain: ``(D,)`` float32 embedding of the image."""
        return np.asarray(self._field("embedding", ("pretrain",)), np.float32)

    def _field(self, key: str, tasks: Sequence[str], field: str = "") -> Any:
        """``self[key]``; AttributeError naming the public ``field`` where this result has none."""
        field = field or key
        if self.task not in tasks:
            raise AttributeError(f"a {self.task} result has no '{field}' (only {' and '.join(tasks)} results have it)")
        if key not in self or self[key] is None:
            why = " (exported segmenters keep none: use the checkpoint)" if field == "probs" else ""
            raise AttributeError(f"this {self.task} result holds no '{field}'{why}")
        return self[key]

    def plot(self) -> Image.Image:
        """The image with the prediction drawn on it (a PIL image: a notebook shows it; ``.save(path)`` writes it)."""
        return self.view.visualise(self.image, self, self.meta)

    def save(self, folder: str | Path = ".", stem: str = "") -> dict[str, str]:
        """Write the task's per-image files (``<stem>_pred.png``, ``<stem>_mask.png``, ...) into ``folder``;
        ``stem`` defaults to the image file's name. Returns {kind: path}."""
        out = Path(folder)
        out.mkdir(parents=True, exist_ok=True)
        name = stem or (Path(self.path).stem if self.path else "image")
        files = self.view.write_outputs(self.image, self, self.meta, out, name, pictures=True)
        if not files:  # a task without pictures of its own (pretrain): the record says it all
            files = {"json": str(out / f"{name}.json")}
            Path(files["json"]).write_text(self.to_json())
        return files

    def to_dict(self) -> dict[str, Any]:
        """The JSON-able record (as predictions.json and the server have it), with the image's path."""
        return {**({"path": self.path} if self.path else {}), **self.view.record(self)}

    def to_json(self, indent: int | None = 2) -> str:
        return json_bytes(self.to_dict(), indent=indent).decode()

    def to_pandas(self) -> Any:
        """A ``pandas.DataFrame``: classify: the top-k classes; segment: each class's share of the pixels;
        instance/detect: one row per object (class, score, box); pretrain: one row, the embedding."""
        try:
            import pandas as pd
        except ImportError:
            raise CnnkitError("Result.to_pandas() needs pandas: pip install pandas") from None
        if self.task == "classify":
            return pd.DataFrame(self["topk"])
        if self.task == "segment":
            return pd.DataFrame({"class": list(self["areas"]), "area": list(self["areas"].values())})
        if self.task in ("instance", "detect"):
            rows = [{"class": i["class"], "score": i["score"], **dict(zip(("x0", "y0", "x1", "y1"), i["box"]))}
                    for i in self["instances"]]
            return pd.DataFrame(rows, columns=["class", "score", "x0", "y0", "x1", "y1"])
        return pd.DataFrame([self.view.record(self)])

    def __repr__(self) -> str:
        where = f" {self.path}" if self.path else ""
        return f"<cnnkit Result ({self.task}){where}: {self.view.describe(self)}>"


def as_results(predictions: list[dict[str, Any]], images: list[Image.Image], sources: Sequence[Any], view: View,
               meta: ModelMeta) -> list[Result]:
    """Prediction dicts -> Results, each with its image and, where the source was a file, its path."""
    return [Result(p, im, view, meta, str(src) if isinstance(src, (str, Path)) else None)
            for p, im, src in zip(predictions, images, sources)]

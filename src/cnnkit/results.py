"""One image's prediction as an object: ``model.predict(...)`` returns a list of :class:`Result`.

A Result is the task's prediction dict (``r["class"]``, ``r["areas"]``, ``r["instances"]``: what the
server answers and predictions.json holds), with the image and the model card kept beside it, so that
it can be looked at (``.plot()``), written (``.save(folder)``, ``.to_json()``), tabled (``.to_pandas()``)
and read by field (``.probs``, ``.mask``, ``.boxes``, ``.masks``, ``.embedding``). Torch-free.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
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

    # the task's fields, as its view declares them (``View.fields``); each raises AttributeError where this
    # result has no such field, as a missing attribute does
    @property
    def probs(self) -> np.ndarray:
        """classify: ``(K,)`` float32 probability of every class; segment (PyTorch only): ``(K, H, W)``."""
        return self.field("probs")

    @property
    def mask(self) -> np.ndarray:
        """segment: ``(H, W)`` class index of every pixel (uint8 or int64), at the image's size."""
        return self.field("mask")

    @property
    def boxes(self) -> np.ndarray:
        """instance/detect: ``(N, 4)`` float32 boxes (x0, y0, x1, y1) in pixels, highest score first."""
        return self.field("boxes")

    @property
    def scores(self) -> np.ndarray:
        """instance/detect: ``(N,)`` confidence of each object; classify: of the top-k classes."""
        return self.field("scores")

    @property
    def labels(self) -> list[str]:
        """instance/detect: the class name of each object; classify: the top-k class names."""
        return self.field("labels")

    @property
    def masks(self) -> np.ndarray:
        """instance: ``(N, H, W)`` bool mask of each object at the image's size (detect: none, ``(0, H, W)``)."""
        return self.field("masks")

    @property
    def confidence(self) -> np.ndarray:
        """segments grown from seeds or none (``cnnkit.segment_image``): ``(H, W)`` float32 confidence in [0, 1] of
        each pixel's label (1 on seeds)."""
        return self.field("confidence")

    @property
    def embedding(self) -> np.ndarray:
        """pretrain: ``(D,)`` float32 embedding of the image."""
        return self.field("embedding")

    def field(self, name: str) -> Any:
        """The field ``name`` as the task's view reads it from the prediction; AttributeError where this task's
        results have no such field, or this result holds none (an exported segmenter keeps no ``probs``)."""
        fields = view_fields(self.view, self)
        if name not in fields:
            has = ", ".join(sorted(fields)) or "none"
            raise AttributeError(f"a {self.task} result has no '{name}' (its fields: {has})")
        value = fields[name]()
        if value is None:
            note = getattr(self.view, "field_notes", {}).get(name, "")  # why, and what to do
            raise AttributeError(f"this {self.task} result holds no '{name}'" + (f" ({note})" if note else ""))
        return value

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
        instance/detect: one row per object (class, score, box); pretrain: one row, the embedding (the view's
        ``table``)."""
        try:
            import pandas as pd
        except ImportError:
            raise CnnkitError("Result.to_pandas() needs pandas: pip install pandas") from None
        table = getattr(self.view, "table", None)  # a view written before View.table: one row, the record
        return pd.DataFrame(table(self) if table is not None else [self.view.record(self)])

    def __repr__(self) -> str:
        where = f" {self.path}" if self.path else ""
        return f"<cnnkit Result ({self.task}){where}: {self.view.describe(self)}>"


def view_fields(view: View, prediction: dict[str, Any]) -> dict[str, Callable[[], Any]]:
    """The view's fields of ``prediction`` ({} for a view written before ``View.fields``)."""
    fields = getattr(view, "fields", None)
    return dict(fields(prediction)) if fields is not None else {}


def as_results(predictions: list[dict[str, Any]], images: list[Image.Image], sources: Sequence[Any], view: View,
               meta: ModelMeta) -> list[Result]:
    """Prediction dicts -> Results, each with its image and, where the source was a file, its path."""
    return [Result(p, im, view, meta, str(src) if isinstance(src, (str, Path)) else None)
            for p, im, src in zip(predictions, images, sources)]

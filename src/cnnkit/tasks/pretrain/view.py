"""Pretraining's output side, without torch: an embedding per image."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from cnnkit.meta import ModelMeta


class EmbeddingView:
    """A prediction is ``{"embedding": [D floats]}``: the pooled trunk output (``cnnkit embed`` writes them)."""

    def __init__(self, spec: Any):
        self.name = spec.name

    @staticmethod
    def record(prediction: dict) -> dict:
        return prediction

    @staticmethod
    def fields(prediction: dict) -> dict[str, Callable[[], Any]]:
        return {"embedding": lambda: np.asarray(prediction["embedding"], np.float32)}

    @staticmethod
    def table(prediction: dict) -> dict[str, list]:
        """One row: the embedding."""
        return {"embedding": [prediction["embedding"]]}

    @staticmethod
    def describe(prediction: dict) -> str:
        values = prediction["embedding"]
        return f"embedding of {len(values)} dimensions ({', '.join(f'{v:.3f}' for v in values[:3])}, ...)"

    @staticmethod
    def csv_row(prediction: dict) -> dict[str, str]:
        return {"embedding": ";".join(f"{v:.6g}" for v in prediction["embedding"])}

    @staticmethod
    def visualise(image: Image.Image, prediction: dict, meta: ModelMeta) -> Image.Image:
        return image.convert("RGB")

    def write_outputs(self, image: Image.Image, prediction: dict, meta: ModelMeta, folder: Path, stem: str,
                      pictures: bool = True) -> dict[str, str]:
        return {}

    @staticmethod
    def write_results(records: list[dict], meta: ModelMeta, folder: Path) -> None:
        return None

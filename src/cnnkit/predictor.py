"""The one face of a loaded model: what ``cnnkit predict``, ``cnnkit serve`` and the API take.

A checkpoint on PyTorch (``cnnkit.api.Model``), an .onnx file on onnxruntime and a TorchScript file
(``cnnkit.export.runtime``) all satisfy :class:`Predictor`. Torch-free.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np
from PIL import Image

from cnnkit.meta import ModelMeta

if TYPE_CHECKING:
    from cnnkit.results import Result


class View(Protocol):
    """A task's output side, without torch: how a prediction dict becomes JSON, a console line, a CSV row,
    a picture and files."""

    name: str

    def record(self, prediction: dict[str, Any]) -> dict[str, Any]:
        """The JSON-able part of a prediction (predictions.json, the server's answer)."""

    def describe(self, prediction: dict[str, Any]) -> str:
        """One short line for the console."""

    def csv_row(self, prediction: dict[str, Any]) -> dict[str, str]:
        """One predictions.csv row (after the path column)."""

    def fields(self, prediction: dict[str, Any]) -> Mapping[str, Callable[[], Any]]:
        """The prediction's named fields (``Result.probs``, ``.boxes``, ...): {name: a function reading it};
        one that returns None says this prediction holds none (``field_notes`` may say why)."""

    def table(self, prediction: dict[str, Any]) -> dict[str, list[Any]]:
        """``Result.to_pandas()``'s columns: {column: values}."""

    def visualise(self, image: Image.Image, prediction: dict[str, Any], meta: ModelMeta) -> Image.Image: ...

    def write_outputs(self, image: Image.Image, prediction: dict[str, Any], meta: ModelMeta, folder: Path,
                      stem: str, pictures: bool = True) -> dict[str, str]:
        """Write the per-image files (pictures, masks, ...) into ``folder``; returns {kind: path}."""

    def write_results(self, records: list[dict[str, Any]], meta: ModelMeta, folder: Path) -> Path | None:
        """A results file for all images in the field's standard form (COCO results), or None."""


class Exported(Protocol):
    """An exported graph loaded for inference: uint8 ``(N, C, H, W)`` in, the task's outputs out."""

    meta: ModelMeta

    @property
    def input_shape(self) -> list: ...

    def run(self, images: np.ndarray) -> list[np.ndarray]: ...


class Runner(Protocol):
    """A task's predictor for exported graphs: images -> prediction dicts through ``model.run``."""

    def __init__(self, spec: Any) -> None: ...

    def predict(self, model: Exported, images: list[Image.Image], options: Any) -> list[dict[str, Any]]: ...


@runtime_checkable
class Predictor(Protocol):
    """A loaded model of any kind."""

    meta: ModelMeta
    view: View
    runtime: str  # pytorch, onnx or torchscript
    thread_safe: bool  # predict() may run in several threads at once
    options_type: type  # the task's prediction options dataclass (cnnkit.options); some may not apply here

    @property
    def classes(self) -> list[str]: ...

    def options(self) -> list[str]:
        """Keyword options ``predict`` takes here."""

    def predict(self, images: Any | Sequence[Any], batch: int = 8, **options: Any) -> list[Result]:
        """Paths, PIL images or arrays -> one :class:`cnnkit.results.Result` (a prediction dict) per image."""

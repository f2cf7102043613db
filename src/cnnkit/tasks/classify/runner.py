"""Classification with an exported graph (onnxruntime or TorchScript), without importing torch here."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from PIL import Image

from cnnkit.predictor import Exported, Runner
from cnnkit.tasks.classify.view import topk_records
from cnnkit.tasks.common import exported_batch


class ClassifyRunner:
    def __init__(self, spec: Any):
        self.spec = spec

    def predict(self, model: Exported, images: list[Image.Image], options: Any) -> list[dict]:
        return topk_records(model.run(exported_batch(model, images))[0], list(model.meta.classes), options.topk)


if TYPE_CHECKING:  # mypy checks that the class keeps the Runner protocol
    from cnnkit.tasks.classify import SPEC

    _runner: Runner = ClassifyRunner(SPEC)

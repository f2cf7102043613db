"""Recognition with an exported graph (onnxruntime or TorchScript), without importing torch here."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from PIL import Image

from cnnkit.predictor import Exported, Runner
from cnnkit.tasks.common import exported_batch


class RecognizeRunner:
    def __init__(self, spec: Any):
        self.spec = spec

    def predict(self, model: Exported, images: list[Image.Image], options: Any) -> list[dict]:
        vectors = model.run(exported_batch(model, images))[0]
        return [{"embedding": [float(v) for v in row]} for row in vectors]


if TYPE_CHECKING:  # mypy checks that the class keeps the Runner protocol
    from cnnkit.tasks.recognize import SPEC

    _runner: Runner = RecognizeRunner(SPEC)

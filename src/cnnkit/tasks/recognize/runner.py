"""Recognition with an exported graph (onnxruntime or TorchScript), without importing torch here."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from cnnkit.data.images import image_to_array
from cnnkit.predictor import Exported, Runner


class RecognizeRunner:
    def __init__(self, spec: Any):
        self.spec = spec

    def predict(self, model: Exported, images: list[Image.Image], options: Any) -> list[dict]:
        meta, side = model.meta, model.input_shape[-1]
        batch = np.stack([image_to_array(im, meta.in_chans, side, meta.pixel_max).transpose(2, 0, 1)
                          for im in images])
        vectors = model.run(np.ascontiguousarray(batch))[0]
        return [{"embedding": [float(v) for v in row]} for row in vectors]


if TYPE_CHECKING:  # mypy checks that the class keeps the Runner protocol
    from cnnkit.tasks.recognize import SPEC

    _runner: Runner = RecognizeRunner(SPEC)

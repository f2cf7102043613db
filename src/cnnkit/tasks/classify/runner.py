"""Classification with an exported graph (onnxruntime or TorchScript), without importing torch here."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from cnnkit.data.images import image_to_array
from cnnkit.predictor import Exported, Runner
from cnnkit.tasks.classify.view import topk_records


class ClassifyRunner:
    def __init__(self, spec: Any):
        self.spec = spec

    def predict(self, model: Exported, images: list[Image.Image], options: Any) -> list[dict]:
        meta, side = model.meta, model.input_shape[-1]
        batch = np.stack([image_to_array(im, meta.in_chans, side, meta.pixel_max).transpose(2, 0, 1)
                          for im in images])
        return topk_records(model.run(np.ascontiguousarray(batch))[0], list(meta.classes), options.topk)


if TYPE_CHECKING:  # mypy checks that the class keeps the Runner protocol
    from cnnkit.tasks.classify import SPEC

    _runner: Runner = ClassifyRunner(SPEC)

"""Instance segmentation and detection with an exported graph (onnxruntime or TorchScript), without torch.

Whole images at the working size (no tiling); the score threshold and the count limit apply here,
above the export's floor of 0.05."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from cnnkit.data.images import resized_array, scaled_size
from cnnkit.predictor import Exported, Runner
from cnnkit.tasks.instance import DEFAULT_DETECTIONS
from cnnkit.tasks.instance.paste import instances_from_outputs


class InstanceRunner:
    def __init__(self, spec: Any):
        self.spec = spec

    def predict(self, model: Exported, images: list[Image.Image], options: Any) -> list[dict]:
        meta = model.meta
        limit = options.max_det or int(meta.extra.get("detections", DEFAULT_DETECTIONS))
        out = []
        for image in images:
            width, height = image.size
            size = scaled_size(width, height, meta.max_size)
            array = resized_array(image, meta.in_chans, size, meta.pixel_max)
            outputs = model.run(np.ascontiguousarray(array.transpose(2, 0, 1)[None]))
            factor = min(1.0, meta.max_size / max(height, width)) if meta.max_size else 1.0
            instances = instances_from_outputs(outputs, list(meta.classes), (height, width), factor,
                                               options.score_thresh, limit)
            out.append({"size": [width, height], "instances": instances})
        return out


if TYPE_CHECKING:  # mypy checks that the class keeps the Runner protocol
    from cnnkit.tasks.instance import SPEC

    _runner: Runner = InstanceRunner(SPEC)

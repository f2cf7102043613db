"""Instance segmentation and detection with an exported graph (onnxruntime or TorchScript), without torch.

Whole images at the working size (``working_scale``, no tiling); the score threshold and the count limit apply here,
above the export's floor of 0.05."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from cnnkit.data.images import resized_array
from cnnkit.predictor import Exported, Runner
from cnnkit.tasks.instance import DEFAULT_DETECTIONS, working_scale, working_size
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
            # the working image as the PyTorch path makes it: shrunk to max_size, a small image grown
            factor = working_scale(height, width, meta.max_size)
            work_h, work_w = working_size(height, width, factor)
            array = resized_array(image, meta.in_chans, (work_w, work_h), meta.pixel_max)
            outputs = model.run(np.ascontiguousarray(array.transpose(2, 0, 1)[None]))
            instances = instances_from_outputs(outputs, list(meta.classes), (height, width), factor,
                                               options.score_thresh, limit)
            out.append({"size": [width, height], "instances": instances})
        return out


if TYPE_CHECKING:  # mypy checks that the class keeps the Runner protocol
    from cnnkit.tasks.instance import SPEC

    _runner: Runner = InstanceRunner(SPEC)

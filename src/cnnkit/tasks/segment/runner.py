"""Segmentation with an exported graph (onnxruntime or TorchScript), without importing torch here.

Whole images: at the working size when the input size is free, else resized to the input's."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from cnnkit.data.images import resized_array, scaled_size
from cnnkit.predictor import Exported, Runner
from cnnkit.tasks.segment.view import class_areas


class SegmentRunner:
    def __init__(self, spec: Any):
        self.spec = spec

    def predict(self, model: Exported, images: list[Image.Image], options: Any) -> list[dict]:
        meta, shape = model.meta, model.input_shape
        out = []
        for image in images:  # one at a time: images differ in size
            width, height = image.size
            size = scaled_size(width, height, meta.max_size) if isinstance(shape[2], str) else (shape[3], shape[2])
            array = resized_array(image, meta.in_chans, size, meta.pixel_max)
            ids = model.run(np.ascontiguousarray(array.transpose(2, 0, 1)[None]))[0][0]
            if ids.shape != (height, width):
                ids = np.asarray(Image.fromarray(ids).resize((width, height), Image.NEAREST))
            out.append({"mask": ids, "probs": None, "areas": class_areas(ids, list(meta.classes)),
                        "size": [width, height]})
        return out


if TYPE_CHECKING:  # mypy checks that the class keeps the Runner protocol
    from cnnkit.tasks.segment import SPEC

    _runner: Runner = SegmentRunner(SPEC)

"""Predict with an exported .onnx file through onnxruntime, without importing torch.

``OnnxModel`` mirrors :class:`cnnkit.api.Model`: ``meta``, ``task`` (the task's output side:
records, pictures, files) and ``predict(images, **options)`` returning the same prediction dicts,
so that ``cnnkit predict``, ``cnnkit serve`` and the Python API take either.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from cnnkit.data.images import as_pil, image_to_array, pil_to_array, scaled_size
from cnnkit.errors import CnnkitError
from cnnkit.export.paste import instances_from_outputs
from cnnkit.tasks.views import VIEWS, check_thresholds, class_areas, topk_records


def _session(path: Path, threads: int):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or (os.cpu_count() or 1)
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    try:
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as e:  # noqa: BLE001 - onnxruntime raises its own types for unreadable files
        raise CnnkitError(f"{path}: not a readable ONNX model ({str(e).splitlines()[0][:200]}); "
                          "export one with `cnnkit export --weights best.pt`") from None


class OnnxModel:
    """An exported cnnkit model on onnxruntime's CPU provider (``threads`` 0: one per core)."""

    thread_safe = True  # onnxruntime sessions may run from several threads at once

    def __init__(self, path: str | Path, threads: int = 0):
        self.path = Path(path)
        if not self.path.is_file():
            raise CnnkitError(f"{self.path}: no such file; pass an .onnx file written by `cnnkit export`")
        self.session = _session(self.path, threads)
        props = self.session.get_modelmeta().custom_metadata_map
        if "cnnkit_meta" not in props:
            raise CnnkitError(f"{self.path}: no cnnkit metadata in this ONNX file; export it with `cnnkit export`")
        self.meta: dict[str, Any] = json.loads(props["cnnkit_meta"])
        self.export: dict[str, Any] = json.loads(props["cnnkit_export"])
        self.config: dict[str, Any] = json.loads(props.get("cnnkit_config", "{}"))  # the training run's
        self.task = VIEWS[self.meta["task"]]
        self.runner = RUNNERS[self.meta["task"]](self)
        self.input_name = self.session.get_inputs()[0].name

    @property
    def classes(self) -> list[str]:
        return list(self.meta["classes"])

    @property
    def input_shape(self) -> list:
        """``[N, C, H, W]``; free axes are named (``batch``, ``height``, ``width``)."""
        return list(self.export["input"]["shape"])

    def options(self) -> list[str]:
        return list(self.runner.options)

    def run(self, images: np.ndarray) -> list[np.ndarray]:
        """``(N, C, H, W)`` uint8 -> the graph's outputs, in order."""
        return self.session.run(None, {self.input_name: np.ascontiguousarray(images)})

    def predict(self, images: Any | Sequence[Any], batch: int = 8, **options: Any) -> list[dict]:
        """Paths, PIL images or ``(H, W[, C])`` uint8 arrays -> one prediction dict per image."""
        unknown = sorted(set(options) - set(self.runner.options))
        if unknown:
            raise CnnkitError(f"predict: options {unknown} do not apply to {self.task.name} (ONNX); "
                              f"it takes {', '.join(self.runner.options) or 'none'}")
        single = not isinstance(images, (list, tuple))
        items = [as_pil(im) for im in ([images] if single else images)]
        step = batch if isinstance(self.input_shape[0], str) else 1
        out: list[dict] = []
        for start in range(0, len(items), step):
            out += self.runner.predict(items[start:start + step], **options)
        return out


def _chw(array: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(array.transpose(2, 0, 1))


def _resized(image: Image.Image, channels: int, size: tuple[int, int], high: float = 0.0) -> np.ndarray:
    """``(H, W, C)`` uint8 of ``image`` at ``size`` (W, H), bilinear; ``high``: the model's pixel_max."""
    array = pil_to_array(image, channels, high)
    if (array.shape[1], array.shape[0]) == size:
        return array
    picture = Image.fromarray(array.squeeze(-1) if channels == 1 else array)
    return pil_to_array(picture.resize(size, Image.BILINEAR), channels)


class ClassifyRunner:
    options = ("topk",)

    def __init__(self, model: OnnxModel):
        self.model = model

    def predict(self, images: list[Image.Image], topk: int = 5) -> list[dict]:
        meta, side = self.model.meta, self.model.input_shape[-1]
        high = meta.get("pixel_max", 0.0)
        batch = np.stack([_chw(image_to_array(im, meta["in_chans"], side, high)) for im in images])
        return topk_records(self.model.run(batch)[0], meta["classes"], topk)


class SegmentRunner:
    """Whole images: at the working size when the input size is free, else resized to the input's."""

    options = ()

    def __init__(self, model: OnnxModel):
        self.model = model

    def predict(self, images: list[Image.Image]) -> list[dict]:
        meta, shape = self.model.meta, self.model.input_shape
        out = []
        for image in images:  # one at a time: images differ in size
            width, height = image.size
            size = scaled_size(width, height, meta.get("max_size", 0)) if isinstance(shape[2], str) \
                else (shape[3], shape[2])
            ids = self.model.run(_chw(_resized(image, meta["in_chans"], size, meta.get("pixel_max", 0.0)))[None])[0][0]
            if ids.shape != (height, width):
                ids = np.asarray(Image.fromarray(ids).resize((width, height), Image.NEAREST))
            out.append({"mask": ids, "probs": None, "areas": class_areas(ids, meta["classes"]),
                        "size": [width, height]})
        return out


class InstanceRunner:
    """Whole images at the working size (no tiling); the score threshold and the count limit apply
    here, above the export's floor of 0.05."""

    options = ("score_thresh", "max_det")

    def __init__(self, model: OnnxModel):
        self.model = model

    def predict(self, images: list[Image.Image], score_thresh: float = 0.5, max_det: int = 0) -> list[dict]:
        check_thresholds(score_thresh, 0.5, max_det)
        meta = self.model.meta
        out = []
        for image in images:
            width, height = image.size
            size = scaled_size(width, height, meta.get("max_size", 0))
            outputs = self.model.run(_chw(_resized(image, meta["in_chans"], size, meta.get("pixel_max", 0.0)))[None])
            factor = min(1.0, meta["max_size"] / max(height, width)) if meta.get("max_size") else 1.0
            instances = instances_from_outputs(outputs, meta["classes"], (height, width), factor,
                                               score_thresh, max_det or meta.get("detections", 300))
            out.append({"size": [width, height], "instances": instances})
        return out


RUNNERS = {"classify": ClassifyRunner, "segment": SegmentRunner, "instance": InstanceRunner,
           "detect": InstanceRunner}

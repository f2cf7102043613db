"""Predict with an exported file: .onnx through onnxruntime (torch is never imported), or TorchScript.

Both load as an :class:`ExportedModel`, which satisfies :class:`cnnkit.predictor.Predictor` like a
checkpoint's ``cnnkit.api.Model``: ``meta`` (the model card), ``view`` (the task's output side) and
``predict(images, **options)`` returning the same prediction dicts, so that ``cnnkit predict``,
``cnnkit serve`` and the Python API take any of them. The task's parts (view, runner, options) are
found by the caller (``cnnkit.api.load``) in the task registry, which sits above this package.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cnnkit.data.images import as_pil
from cnnkit.errors import CnnkitError, require
from cnnkit.meta import ModelMeta
from cnnkit.options import NoOptions, make_options, runtime_options
from cnnkit.results import Result, as_results


@dataclass(frozen=True)
class TaskParts:
    """What running an exported graph needs of its task."""

    view: Any  # cnnkit.predictor.View
    runner: Any  # cnnkit.predictor.Runner
    options: type  # the task's prediction options dataclass


class ExportedModel:
    """An exported cnnkit model; subclasses supply ``run`` for their runtime."""

    runtime = "exported"
    thread_safe = True  # onnxruntime sessions and TorchScript modules may run from several threads at once

    def __init__(self, path: Path, props: Mapping[str, str], parts_for: Callable[[str], TaskParts] | None):
        self.path = path
        if "cnnkit_meta" not in props:
            raise CnnkitError(f"{path}: no cnnkit metadata in this file; export it with `cnnkit export`")
        self.meta = ModelMeta.from_dict(json.loads(props["cnnkit_meta"]), origin=str(path))
        self.export: dict[str, Any] = json.loads(props["cnnkit_export"])
        self.config: dict[str, Any] = json.loads(props.get("cnnkit_config", "{}"))  # the training run's
        # without the task's parts (``parts_for`` None) only ``run`` works: export --verify's raw outputs
        parts = parts_for(self.meta.task) if parts_for is not None else TaskParts(None, None, NoOptions)
        self.view, self.runner, self.options_type = parts.view, parts.runner, parts.options

    @property
    def classes(self) -> list[str]:
        return list(self.meta.classes)

    @property
    def input_shape(self) -> list:
        """``[N, C, H, W]``; free axes are named (``batch``, ``height``, ``width``)."""
        return list(self.export["input"]["shape"])

    def options(self) -> list[str]:
        return [i.name for i in runtime_options(self.options_type, self.runtime)]

    def run(self, images: np.ndarray) -> list[np.ndarray]:
        """``(N, C, H, W)`` uint8 -> the graph's outputs, in order."""
        raise NotImplementedError

    def predict(self, images: Any | Sequence[Any], batch: int = 8, **options: Any) -> list[Result]:
        """Paths, PIL images or ``(H, W[, C])`` uint8 arrays -> one Result (a prediction dict) per image."""
        chosen = make_options(self.options_type, options, self.meta.task, self.runtime)
        single = not isinstance(images, (list, tuple))
        sources = [images] if single else list(images)
        items = [as_pil(im) for im in sources]
        step = batch if isinstance(self.input_shape[0], str) else 1
        out: list[dict] = []
        for start in range(0, len(items), step):
            out += self.runner.predict(self, items[start:start + step], chosen)
        return as_results(out, items, sources, self.view, self.meta)

    def explain(self, *args: Any, **kwargs: Any) -> list:
        """Always CnnkitError: saliency maps need the checkpoint (``cnnkit.loading.Model.explain``)."""
        raise CnnkitError(f"{self.path}: explanations need the PyTorch checkpoint (best.pt) the export was made "
                          "from: gradients and layers are not in an exported file")


def _session(path: Path, threads: int):
    require("onnxruntime", "export", f"{path}: running an .onnx file")
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or (os.cpu_count() or 1)
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    try:
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as e:  # noqa: BLE001 - onnxruntime raises its own types for unreadable files
        raise CnnkitError(f"{path}: not a readable ONNX model ({str(e).splitlines()[0][:200]}); "
                          "export one with `cnnkit export --weights best.pt`") from None


class OnnxModel(ExportedModel):
    """An exported cnnkit model on onnxruntime's CPU provider (``threads`` 0: one per core)."""

    runtime = "onnx"

    def __init__(self, path: str | Path, parts_for: Callable[[str], TaskParts] | None, threads: int = 0):
        path = Path(path)
        if not path.is_file():
            raise CnnkitError(f"{path}: no such file; pass an .onnx file written by `cnnkit export`")
        self.session = _session(path, threads)
        super().__init__(path, self.session.get_modelmeta().custom_metadata_map, parts_for)
        self.input_name = self.session.get_inputs()[0].name

    def run(self, images: np.ndarray) -> list[np.ndarray]:
        return finite_outputs(self.session.run(None, {self.input_name: np.ascontiguousarray(images)}), self.path)


class TorchScriptModel(ExportedModel):
    """A TorchScript file from ``cnnkit export --format torchscript`` (imports torch), on the CPU."""

    runtime = "torchscript"

    def __init__(self, path: str | Path, parts_for: Callable[[str], TaskParts] | None, threads: int = 0):
        import warnings

        import torch
        import torchvision  # noqa: F401 - registers torchvision::nms and roi_align, which detectors call

        path = Path(path)
        files = {"cnnkit.json": ""}
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FutureWarning)  # "torch.jit.load is deprecated": not the user's
                self.module = torch.jit.load(str(path), map_location="cpu", _extra_files=files)
        except (RuntimeError, ValueError) as e:
            raise CnnkitError(f"{path}: not a readable TorchScript file ({str(e).splitlines()[0][:200]}); "
                              "export one with `cnnkit export --format torchscript`") from None
        super().__init__(path, json.loads(files["cnnkit.json"] or "{}"), parts_for)

    def run(self, images: np.ndarray) -> list[np.ndarray]:
        import torch

        with torch.no_grad():
            out = self.module(torch.from_numpy(np.ascontiguousarray(images)))
        return finite_outputs([t.numpy() for t in (out if isinstance(out, (tuple, list)) else (out,))], self.path)


def finite_outputs(outputs: list[np.ndarray], path: Path) -> list[np.ndarray]:
    """``outputs``, or CnnkitError when a float output holds NaN or infinity: an exported model of diverged
    weights answered 'circle (nan)' with exit 0."""
    if any(o.dtype.kind == "f" and not np.isfinite(o).all() for o in outputs):
        raise CnnkitError(f"{path}: the model computes NaN or infinite values (its weights diverged in training), "
                          "so it cannot predict; train again with a lower --lr or --grad-clip")
    return outputs

"""cnnkit: train, evaluate, predict and export CNNs for images.

The names below load on first use, so that the ONNX runtime path (``cnnkit predict model.onnx``)
never imports torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_LAZY = {"Model": "cnnkit.api", "load": "cnnkit.api", "train": "cnnkit.api", "val": "cnnkit.api",
         "Result": "cnnkit.results", "ValResult": "cnnkit.validate",
         "segment_image": "cnnkit.grow.segments", "segment_images": "cnnkit.grow.segments",
         "verify": "cnnkit.recognition.identify", "enrol": "cnnkit.recognition.identify",
         "search": "cnnkit.recognition.identify", "Gallery": "cnnkit.recognition.gallery",
         "explain_images": "cnnkit.explain.core", "Explanation": "cnnkit.explain.core",
         "click_mask": "cnnkit.annotate", "Click": "cnnkit.metrics.clicks",
         "TrainConfig": "cnnkit.config", "ModelMeta": "cnnkit.meta", "register_task": "cnnkit.tasks",
         "create_model": "cnnkit.models", "list_models": "cnnkit.models", "register_model": "cnnkit.models"}

if TYPE_CHECKING:  # an editor follows these; at run time they load on first use (below)
    from cnnkit.annotate import click_mask
    from cnnkit.api import Model, export, load, train, val
    from cnnkit.config import TrainConfig
    from cnnkit.explain.core import Explanation, explain_images
    from cnnkit.grow.segments import segment_image, segment_images
    from cnnkit.meta import ModelMeta
    from cnnkit.metrics.clicks import Click
    from cnnkit.models import create_model, list_models, register_model
    from cnnkit.recognition.gallery import Gallery
    from cnnkit.recognition.identify import enrol, search, verify
    from cnnkit.results import Result
    from cnnkit.tasks import register_task
    from cnnkit.validate import ValResult


def __getattr__(name: str) -> Any:
    if name == "export":  # the export package, callable as cnnkit.api.export (see cnnkit/export/__init__.py)
        return importlib.import_module("cnnkit.export")
    if name == "TrainConfig":  # a config reads its task's options from the registered tasks
        importlib.import_module("cnnkit.tasks")
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'cnnkit' has no attribute '{name}'")


def __dir__() -> list[str]:
    """The public API (a notebook completes these), not the lazy-loading machinery."""
    return sorted(__all__)


__all__ = ["Click", "Explanation", "Gallery", "Model", "ModelMeta", "Result", "TrainConfig", "ValResult", "__version__",
           "click_mask", "create_model", "enrol", "explain_images", "export", "list_models", "load", "register_model",
           "register_task", "search", "segment_image", "segment_images", "train", "val", "verify"]

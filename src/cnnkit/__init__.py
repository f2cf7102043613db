"""cnnkit: train, evaluate, predict and export CNNs for images.

The names below load on first use, so that the ONNX runtime path (``cnnkit predict model.onnx``)
never imports torch.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_LAZY = {"Model": "cnnkit.api", "load": "cnnkit.api", "train": "cnnkit.api",
         "TrainConfig": "cnnkit.config", "ModelMeta": "cnnkit.meta", "register_task": "cnnkit.tasks",
         "create_model": "cnnkit.models", "list_models": "cnnkit.models", "register_model": "cnnkit.models"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'cnnkit' has no attribute '{name}'")


__all__ = ["Model", "ModelMeta", "TrainConfig", "__version__", "create_model", "list_models", "load",
           "register_model", "register_task", "train"]

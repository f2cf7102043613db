"""Export to ONNX and TorchScript (``exporter``, with torch) and ONNX inference (``runtime``, without torch).

An exported model takes ``uint8`` images ``(N, C, H, W)``, normalises them itself and ends with its
task's post-processing; its task, classes, colours, input size and cnnkit version travel inside
the file (ONNX metadata properties, or TorchScript's extra file ``cnnkit.json``).
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import Any


class CallableModule(types.ModuleType):
    """``cnnkit.export`` is this package and also the API's ``cnnkit.export(weights, format=...)``: once the
    package is imported, Python sets it as ``cnnkit``'s attribute ``export``, which hid the function."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        # resolved by name at call time, as cnnkit's own lazy names are: the API sits above this package
        return importlib.import_module("cnnkit.api").export(*args, **kwargs)


sys.modules[__name__].__class__ = CallableModule

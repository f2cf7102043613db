"""What the network looks at: saliency maps of any task's predictions (``cnnkit explain``, ``Model.explain``).

``methods``: the maps (Grad-CAM, Grad-CAM++, Score-CAM by pytorch-grad-cam; occlusion and integrated gradients
by captum) and the choice of layer; ``core``: ``explain_images`` and ``Explanation`` (overlays, saved maps).
Imported on first use: torch and the libraries load with them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cnnkit.explain.core import Explanation, explain_images
    from cnnkit.explain.methods import compute_maps, default_layer

# here, torch-free, for the command line's choices; cnnkit.explain.methods.METHODS is the same tuple
METHODS = ("gradcam", "gradcam++", "scorecam", "occlusion", "ig")

_LAZY = {"Explanation": "cnnkit.explain.core", "explain_images": "cnnkit.explain.core",
         "compute_maps": "cnnkit.explain.methods", "default_layer": "cnnkit.explain.methods"}


def __getattr__(name: str) -> Any:
    import importlib

    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'cnnkit.explain' has no attribute '{name}'")


__all__ = ["METHODS", "Explanation", "compute_maps", "default_layer", "explain_images"]

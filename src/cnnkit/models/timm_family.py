"""timm's models as a registry family, resolved by name on demand (``registry.register_family``):
``timm/<name>`` (a classifier), ``<arch>_timm/<name>`` (a segmenter or a detector on timm's encoder). Its
own module: the segmenters and detectors it builds import the encoders, which import ``timm_models``.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from cnnkit.errors import CnnkitError
from cnnkit.models.detection import build_rcnn
from cnnkit.models.registry import (
    BOX_DETECTOR,
    CLASSIFIER,
    MASK_DETECTOR,
    SEGMENTER,
    ModelEntry,
    register_family,
)
from cnnkit.models.segmentation import ARCHITECTURES, build_segmentation_model
from cnnkit.models.timm_models import PREFIX, timm_classifier


def resolve(model: str) -> ModelEntry:
    """``timm/<name>`` (a classifier) or ``<arch>_timm/<name>`` (a segmenter or detector) as a registry entry."""
    arch, _, name = model.partition(PREFIX)
    if not arch:
        def classifier(num_classes: int = 10, in_chans: int = 3, pretrained: str = "", **kw: Any) -> nn.Module:
            return timm_classifier(name, num_classes, in_chans, pretrained, **kw)

        return ModelEntry(model, classifier, CLASSIFIER, f"timm's {name} (pip install 'cnnkit[timm]').")
    arch = arch.rstrip("_")
    if arch in ("maskrcnn", "fasterrcnn"):
        return _detector(model, arch, name)
    if arch not in ARCHITECTURES or arch == "segnet":  # SegNet needs its encoder's max-pooling indices
        known = [a for a in ARCHITECTURES if a != "segnet"]
        raise CnnkitError(f"unknown model '{model}': a timm encoder goes under {', '.join(known)} "
                          f"(such as unet_timm/{name})")

    def segmenter(num_classes: int = 2, in_chans: int = 3, pretrained: str = "", upsample: str = "transpose",
                  **kw: Any) -> nn.Module:
        return build_segmentation_model(arch, PREFIX + name, num_classes, in_chans, pretrained, upsample, **kw)

    return ModelEntry(model, segmenter, SEGMENTER, f"{arch} on timm's {name} encoder.")


def _detector(model: str, arch: str, name: str) -> ModelEntry:
    masks = arch == "maskrcnn"

    def detector(num_classes: int = 1, in_chans: int = 3, pretrained: str = "", **kw: Any) -> nn.Module:
        return build_rcnn(PREFIX + name, num_classes, in_chans, masks, pretrained, **kw)

    kind = MASK_DETECTOR if masks else BOX_DETECTOR
    return ModelEntry(model, detector, kind, f"{arch} on timm's {name} encoder + FPN.")


register_family(PREFIX, resolve)

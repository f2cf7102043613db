"""What ``cnnkit export`` writes for instance and detect: one uint8 image in, scored objects out."""

from __future__ import annotations

from typing import Any

import torch

from cnnkit.errors import CnnkitError
from cnnkit.export.graph import ExportGraph
from cnnkit.meta import ModelMeta
from cnnkit.models.wrapper import ImageModel
from cnnkit.tasks.instance.infer import PostProcess, run_detector

# the lowest score an exported detector returns: the runtime applies the user's threshold above it
EXPORT_SCORE_THRESH = 0.05


class DetectGraph(ExportGraph):
    """One image ``(1, C, H, W)`` uint8 of any size -> ``boxes`` ``(K, 4)`` xyxy pixels, ``labels`` ``(K,)``
    int64 (1-based class), ``scores`` ``(K,)`` and, for Mask R-CNN, ``masks`` ``(K, 28, 28)``: each
    object's mask probabilities inside its box (pasted into the image by the runtime, one object at a
    time, so that memory does not grow with objects x image size)."""

    batch_dynamic = False
    free_size = "always"

    def __init__(self, model: ImageModel, half: bool = False):
        if half:
            raise CnnkitError("--half: instance and detect models export in float32 only; drop --half")
        super().__init__(model)
        heads = model.net.roi_heads
        self.post = PostProcess(EXPORT_SCORE_THRESH, heads.nms_thresh, heads.detections_per_img)
        self.masks = getattr(heads, "mask_predictor", None) is not None
        self.outputs = ("boxes", "labels", "scores", "masks") if self.masks else ("boxes", "labels", "scores")

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, ...]:
        out = run_detector(self.model.net, [self.net_input(images[0])], self.post)[0]
        found = (out["boxes"], out["labels"], out["scores"])
        return (*found, out["masks"][:, 0]) if self.masks else found

    @staticmethod
    def metric_outputs(outputs: list[torch.Tensor], meta: ModelMeta) -> list[dict[str, Any]]:
        keys = ("boxes", "labels", "scores", "masks")
        out = {k: torch.as_tensor(v) for k, v in zip(keys, outputs)}
        if "masks" in out:
            out["masks"] = out["masks"][:, None]
        return [out]

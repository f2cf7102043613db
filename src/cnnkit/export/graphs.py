"""What is exported for each task: the model from uint8 pixels to post-processed outputs.

Each graph takes ``images`` ``(N, C, H, W)`` uint8 and returns plain tensors (no dicts), so that
ONNX and TorchScript can hold it. ``metric_outputs`` turns those tensors back into what the task's
metrics take, so that PyTorch and onnxruntime can be scored side by side.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from cnnkit.errors import CnnkitError
from cnnkit.metrics.segmentation import logits_to_ids
from cnnkit.models.wrapper import ImageModel

# the lowest score an exported detector returns: the runtime applies the user's threshold above it
EXPORT_SCORE_THRESH = 0.05


class _Graph(nn.Module):
    outputs: tuple[str, ...] = ()
    batch_dynamic = True  # the batch axis may be left free (--dynamic)
    free_size = "never"  # height and width: "never" free, free with --dynamic, or "always"

    def __init__(self, model: ImageModel, half: bool = False):
        super().__init__()
        self.model = model.half() if half else model
        self.dtype = torch.float16 if half else torch.float32
        self.eval()

    def net_input(self, images: torch.Tensor) -> torch.Tensor:
        return self.model.normalize(images).to(self.dtype)


class ClassifyGraph(_Graph):
    """``(N, C, S, S)`` uint8 -> ``probs`` ``(N, K)`` float32 (softmax)."""

    outputs = ("probs",)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.model.net(self.net_input(images)).float().softmax(1)

    @staticmethod
    def metric_outputs(outputs: list[torch.Tensor], meta: dict[str, Any]) -> torch.Tensor:
        return outputs[0]


class SegmentGraph(_Graph):
    """``(N, C, H, W)`` uint8 -> ``mask`` ``(N, H, W)`` uint8 class ids (argmax, or sigmoid > 0.5 for
    a binary head)."""

    outputs = ("mask",)
    free_size = "dynamic"

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return logits_to_ids(self.model.net(self.net_input(images)).float()).to(torch.uint8)

    @staticmethod
    def metric_outputs(outputs: list[torch.Tensor], meta: dict[str, Any]) -> torch.Tensor:
        """Class ids as one-hot scores ``(N, K, H, W)``, which the segmentation metrics take as logits."""
        ids = outputs[0].long()
        k = meta.get("num_outputs", meta["num_classes"])
        if k == 1:  # binary head: a positive logit is foreground
            return (ids[:, None].float() * 2 - 1)
        return nn.functional.one_hot(ids, k).permute(0, 3, 1, 2).float()


class DetectGraph(_Graph):
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
        heads.score_thresh = EXPORT_SCORE_THRESH
        self.masks = getattr(heads, "mask_predictor", None) is not None
        self.outputs = ("boxes", "labels", "scores", "masks") if self.masks else ("boxes", "labels", "scores")

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, ...]:
        out = self.model.net([self.net_input(images[0])])[0]
        found = (out["boxes"], out["labels"], out["scores"])
        return (*found, out["masks"][:, 0]) if self.masks else found

    @staticmethod
    def metric_outputs(outputs: list[torch.Tensor], meta: dict[str, Any]) -> list[dict[str, Any]]:
        keys = ("boxes", "labels", "scores", "masks")
        out = {k: torch.as_tensor(v) for k, v in zip(keys, outputs)}
        if "masks" in out:
            out["masks"] = out["masks"][:, None]
        return [out]

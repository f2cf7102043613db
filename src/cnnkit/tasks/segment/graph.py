"""What ``cnnkit export`` writes for segment: uint8 images in, class-id maps out."""

from __future__ import annotations

import torch
from torch import nn

from cnnkit.export.graph import ExportGraph
from cnnkit.meta import ModelMeta
from cnnkit.metrics.segmentation import logits_to_ids


class SegmentGraph(ExportGraph):
    """``(N, C, H, W)`` uint8 -> ``mask`` ``(N, H, W)`` uint8 class ids (argmax, or sigmoid > 0.5 for
    a binary head)."""

    outputs = ("mask",)
    free_size = "dynamic"

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return logits_to_ids(self.model.net(self.net_input(images)).float()).to(torch.uint8)

    @staticmethod
    def metric_outputs(outputs: list[torch.Tensor], meta: ModelMeta) -> torch.Tensor:
        """Class ids as one-hot scores ``(N, K, H, W)``, which the segmentation metrics take as logits."""
        ids = outputs[0].long()
        k = meta.num_outputs
        if k == 1:  # binary head: a positive logit is foreground
            return (ids[:, None].float() * 2 - 1)
        return nn.functional.one_hot(ids, k).permute(0, 3, 1, 2).float()

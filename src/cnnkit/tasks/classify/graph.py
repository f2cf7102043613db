"""What ``cnnkit export`` writes for classify: uint8 images in, softmax probabilities out."""

from __future__ import annotations

import torch

from cnnkit.export.graph import ExportGraph
from cnnkit.meta import ModelMeta


class ClassifyGraph(ExportGraph):
    """``(N, C, S, S)`` uint8 -> ``probs`` ``(N, K)`` float32 (softmax)."""

    outputs = ("probs",)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.model.net(self.net_input(images)).float().softmax(1)

    @staticmethod
    def metric_outputs(outputs: list[torch.Tensor], meta: ModelMeta) -> torch.Tensor:
        return outputs[0]

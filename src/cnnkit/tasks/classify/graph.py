"""What ``cnnkit export`` writes for classify: uint8 images in, softmax probabilities out."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from cnnkit.export.graph import ExportGraph


class ClassifyGraph(ExportGraph):
    """``(N, C, S, S)`` uint8 -> ``probs`` ``(N, K)`` float32 (softmax)."""

    outputs = ("probs",)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.model.net(self.net_input(images)).float().softmax(1)

    @staticmethod
    def metric_outputs(outputs: list[torch.Tensor], meta: Mapping[str, Any]) -> torch.Tensor:
        return outputs[0]

"""What ``cnnkit export`` writes for recognize: uint8 images in, embeddings out."""

from __future__ import annotations

import torch

from cnnkit.export.graph import ExportGraph
from cnnkit.meta import ModelMeta


class RecognizeGraph(ExportGraph):
    """``(N, C, S, S)`` uint8 -> ``embedding`` ``(N, D)`` float32 (unit length when the model normalises)."""

    outputs = ("embedding",)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.model.net.embedding(self.net_input(images)).float()

    @staticmethod
    def metric_outputs(outputs: list[torch.Tensor], meta: ModelMeta) -> torch.Tensor:
        return outputs[0]

"""The base of what is exported for each task: the model from uint8 pixels to post-processed outputs.

Each task's graph (``cnnkit/tasks/<task>/graph.py``) takes ``images`` ``(N, C, H, W)`` uint8 and returns
plain tensors (no dicts), so that ONNX and TorchScript can hold it. ``metric_outputs`` turns those
tensors back into what the task's metrics take, so that PyTorch and onnxruntime can be scored side by side.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from cnnkit.meta import ModelMeta
from cnnkit.models.wrapper import ImageModel


class ExportGraph(nn.Module):
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

    @staticmethod
    def metric_outputs(outputs: list[torch.Tensor], meta: ModelMeta) -> Any:
        """The exported outputs as the task's metrics take them."""
        raise NotImplementedError

"""The toy task's torch side: synthetic grey images, a two-layer CNN, MSE, MAE, prediction and export."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import nn
from torch.utils.data import TensorDataset

from cnnkit.data.images import image_to_array
from cnnkit.engine.task import ExplainRequest, ExplainTargets, TaskData
from cnnkit.errors import CnnkitError
from cnnkit.export.graph import ExportGraph
from cnnkit.meta import ModelMeta
from cnnkit.models import register_model
from cnnkit.models.wrapper import build_image_model
from tests.tasks.toy import BrightnessOptions
from tests.tasks.toy.view import BrightnessView

SIDE = 16


@register_model("brightness_cnn", kind="brightness")  # the toy task's own kind: its name (no model_kind)
def brightness_cnn(num_classes: int = 1, in_chans: int = 1, **kw: Any) -> nn.Module:
    """Two convolutions and a linear head: one output per image."""
    return nn.Sequential(nn.Conv2d(in_chans, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(8, num_classes))


def grey_images(n: int, seed: int, noise: float = 8.0) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` uniform grey images ``(n, 1, SIDE, SIDE)`` uint8 with a little noise (its standard deviation in grey
    levels), and their mean brightness."""
    rng = np.random.default_rng(seed)
    level = rng.uniform(0, 1, n)
    images = np.clip(level[:, None, None, None] * 255 + rng.normal(0, noise, (n, 1, SIDE, SIDE)), 0, 255)
    images = images.astype(np.uint8)
    return torch.from_numpy(images), torch.from_numpy(images.reshape(n, -1).mean(1) / 255).float()


class MAE:
    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.total, self.count = 0.0, 0

    def update(self, outputs: torch.Tensor, targets: torch.Tensor) -> None:
        self.total += float((outputs.reshape(-1).sigmoid() - targets).abs().sum())
        self.count += len(targets)

    def compute(self) -> dict[str, float]:
        return {"score": 1 - self.total / max(self.count, 1)}

    def save(self, folder: Any) -> list:
        return []

    def table(self) -> str:
        return f"mean absolute error {self.total / max(self.count, 1):.4f}"


class BrightnessGraph(ExportGraph):
    outputs = ("brightness",)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.model.net(self.net_input(images)).float().sigmoid()[:, 0]

    @staticmethod
    def metric_outputs(outputs: list[torch.Tensor], meta: Mapping[str, Any]) -> torch.Tensor:
        return torch.logit(outputs[0].clamp(1e-6, 1 - 1e-6))[:, None]


class BrightnessTask(BrightnessView):
    default_monitor = "score"
    options = BrightnessOptions
    graph = BrightnessGraph

    def build_data(self, cfg: Any, meta: ModelMeta | None = None, split: str | None = None) -> TaskData:
        n = int(cfg.data.partition(":")[2] or 256)
        if meta is None:  # training: the task makes the card, with its own training option
            meta = ModelMeta.card(task=self.name, model=cfg.model, classes=["brightness"], in_chans=1, imgsz=SIDE,
                                  mean=[0.5], std=[0.25], extra={"noise": cfg.options.noise})
        noise = meta.value("noise", 8.0)
        train = None if split is not None else TensorDataset(*grey_images(n, cfg.seed, noise))
        return TaskData(train, TensorDataset(*grey_images(max(n // 4, 8), cfg.seed + 1, noise)), meta)

    def build_model(self, cfg: Any, meta: ModelMeta) -> nn.Module:
        return build_image_model(meta.replace(model=cfg.model, model_args=dict(cfg.model_args)))

    def build_loss(self, cfg: Any, data: TaskData):
        return lambda outputs, targets: nn.functional.mse_loss(outputs.reshape(-1).sigmoid(), targets)

    def build_metrics(self, meta: ModelMeta, device: torch.device, options: Any = None) -> MAE:
        return MAE()

    def eval_forward(self, options: Any) -> None:
        return None

    @torch.no_grad()
    def predict(self, model: nn.Module, images: list[Image.Image], options: BrightnessOptions) -> list[dict]:
        batch = torch.stack([torch.from_numpy(image_to_array(im, 1, SIDE)).permute(2, 0, 1) for im in images])
        values = model(batch).reshape(-1).sigmoid()
        return [{"brightness": round(float(v), options.decimals)} for v in values]

    def explain_targets(self, model: nn.Module, image: Any, request: ExplainRequest) -> ExplainTargets:
        raise CnnkitError(f"{model.meta.model}: a brightness model has no classes to explain; use `cnnkit explain "
                          "--features` to see what its layers respond to")

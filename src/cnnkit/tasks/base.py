"""The task interface: what each task supplies so one engine trains them all.

The trainer calls these methods and never looks at the task's name.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import nn
from torch.utils.data import Dataset

from cnnkit.config import TrainConfig
from cnnkit.errors import CnnkitError


@dataclass
class TaskData:
    """Datasets of one run and the metadata the model and checkpoint need (classes, channels, ...)."""

    train: Dataset | None
    val: Dataset
    meta: dict[str, Any] = field(default_factory=dict)
    test: Dataset | None = None  # a test split: scored once by best.pt after training, never used to choose
    init_batch: torch.Tensor | None = None  # a sample of training images for data-dependent init
    collate_fn: Callable | None = None
    # (images, targets) -> (images, targets) on the device, for whole-batch training augmentation
    batch_transform: Callable[[torch.Tensor, Any], tuple[torch.Tensor, Any]] | None = None
    # (model, images, targets) -> outputs, for models that compute their losses inside (detection)
    train_forward: Callable[[nn.Module, Any, Any], Any] | None = None


def given_stats(cfg: TrainConfig, channels: int) -> tuple[list[float], list[float]]:
    """``--mean`` / ``--std`` for ``channels``-channel images: one value each, or one for all; else an error."""
    out = []
    for key, values in (("mean", list(cfg.mean)), ("std", list(cfg.std))):
        if len(values) not in (1, channels):
            raise CnnkitError(f"--{key} {' '.join(f'{v:g}' for v in values)}: {len(values)} values for "
                              f"{channels}-channel images; give {channels} (one per channel), or one for all")
        out.append(values * channels if len(values) == 1 else values)
    return out[0], out[1]


class Metrics(Protocol):
    def update(self, outputs: torch.Tensor, targets: Any) -> None: ...
    def compute(self) -> dict[str, float]: ...
    def reset(self) -> None: ...
    def save(self, folder: Path) -> list[Path]: ...
    def table(self) -> str: ...


class Task(Protocol):
    name: str
    default_monitor: str

    def build_data(self, cfg: TrainConfig, meta: dict[str, Any] | None = None, for_eval: bool | str = False
                   ) -> TaskData:
        """Data sets for training (or, with ``for_eval``, the split to score as ``val``: 'auto', 'val',
        'train', 'test' or 'all'; see ``cnnkit.data.splits``)."""

    def build_model(self, cfg: TrainConfig, meta: dict[str, Any]) -> nn.Module: ...
    def build_loss(self, cfg: TrainConfig, data: TaskData) -> Callable[[Any, Any], torch.Tensor]: ...
    def build_metrics(self, meta: dict[str, Any], device: torch.device) -> Metrics: ...
    def tta_forward(self, model: nn.Module, images: torch.Tensor) -> Any: ...
    def predict(self, model: nn.Module, images: list, **options: Any) -> list[dict[str, Any]]:
        """PIL images -> one prediction dict per image (task-specific keys)."""

    def record(self, prediction: dict[str, Any]) -> dict[str, Any]:
        """The JSON-able part of a prediction, for predictions.json."""

    def describe(self, prediction: dict[str, Any]) -> str:
        """One short line for the console."""

    def csv_row(self, prediction: dict[str, Any]) -> dict[str, str]: ...
    def visualise(self, image: Any, prediction: dict[str, Any], meta: dict[str, Any]) -> Any: ...
    def write_outputs(self, image: Any, prediction: dict[str, Any], meta: dict[str, Any], folder: Path, stem: str,
                      pictures: bool = True) -> dict[str, str]:
        """Write the per-image files (pictures, masks, ...) into ``folder``; returns {kind: path}."""

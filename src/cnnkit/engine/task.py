"""The task interface: what each task supplies so one engine trains them all.

The trainer calls these methods and never looks at the task's name.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import nn
from torch.utils.data import Dataset

from cnnkit.config import TrainConfig
from cnnkit.predictor import View


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
    labels: str = ""  # what the run's first line says of the labels; "" = "<num_classes> classes"


class Metrics(Protocol):
    def update(self, outputs: torch.Tensor, targets: Any) -> None: ...
    def compute(self) -> dict[str, float]: ...
    def reset(self) -> None: ...
    def save(self, folder: Path) -> list[Path]: ...
    def table(self) -> str: ...


class Task(View, Protocol):
    """The torch side of a task, built by the task registry from its spec (``cnnkit.tasks``); it is also
    the task's output side (:class:`cnnkit.predictor.View`)."""

    name: str
    default_monitor: str  # the metric that picks best.pt unless --monitor says otherwise

    @property
    def options(self) -> type:
        """The prediction options dataclass (cnnkit.options)."""

    @property
    def graph(self) -> type | None:
        """The export graph (a cnnkit.export.graph.ExportGraph subclass); None: not exportable."""

    def build_data(self, cfg: TrainConfig, meta: Mapping[str, Any] | None = None, split: str | None = None
                   ) -> TaskData:
        """Data sets for training (``split`` None: train, val and test), or for evaluation the one split to
        score, as ``val``: 'auto', 'val', 'train', 'test' or 'all' (see ``cnnkit.data.splits``). A task
        reads its data through ``cnnkit.data.request.DataRequest.from_config(cfg, meta, split)``."""

    def build_model(self, cfg: TrainConfig, meta: Mapping[str, Any]) -> nn.Module: ...
    def build_loss(self, cfg: TrainConfig, data: TaskData) -> Callable[[Any, Any], torch.Tensor | None]: ...
    def build_metrics(self, meta: Mapping[str, Any], device: torch.device, options: Any = None) -> Metrics: ...

    def eval_forward(self, options: Any) -> Callable[[nn.Module, Any], Any] | None:
        """How evaluation runs the model under the prediction ``options`` that apply to it (tta, max_det);
        None: ``model(images)``."""

    def predict(self, model: nn.Module, images: list, options: Any) -> list[dict[str, Any]]:
        """PIL images -> one prediction dict per image (task-specific keys); no attribute of ``model`` changes."""

"""The task interface: what each task supplies so one engine trains them all.

The trainer calls these methods and never looks at the task's name.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import nn
from torch.utils.data import Dataset

from cnnkit.config import TrainConfig
from cnnkit.meta import ModelMeta
from cnnkit.predictor import View


@dataclass
class TaskData:
    """Datasets of one run and the model card the model and checkpoint need (classes, channels, ...)."""

    train: Dataset | None
    val: Dataset
    meta: ModelMeta
    test: Dataset | None = None  # a test split: scored once by best.pt after training, never used to choose
    init_batch: torch.Tensor | None = None  # a sample of training images for data-dependent init
    collate_fn: Callable | None = None
    # (images, targets) -> (images, targets) on the device, for whole-batch training augmentation
    batch_transform: Callable[[torch.Tensor, Any], tuple[torch.Tensor, Any]] | None = None
    # (model, images, targets) -> outputs, for models that compute their losses inside (detection)
    train_forward: Callable[[nn.Module, Any, Any], Any] | None = None
    labels: str = ""  # what the run's first line says of the labels; "" = "<num_classes> classes"


@dataclass
class ExplainRequest:
    """What to explain in one image: ``cnnkit explain``'s flags, ``Model.explain``'s keywords."""

    target: str = ""  # a class name or index; "": the task's choice (top-k classes, predicted classes, detections)
    topk: int = 1  # classify: how many of the most probable classes get a map
    reference: Any = None  # recognize: the PIL image the explained image is compared with
    options: Any = None  # the task's prediction options (instance/detect: score_thresh, ...); None: defaults


@dataclass
class ExplainTargets:
    """What a task asks an explanation method to explain in one image: T targets, one map each.

    ``score`` runs the model itself, so that a detector's list input or a recognition pair stays the task's
    business: a batch ``(B, C, h, w)`` of images like ``inputs`` -> ``(B, T)`` differentiable scores (class
    logits, a class's logits summed over its predicted pixels, a detection's matched score, a similarity).
    """

    inputs: torch.Tensor  # (1, C, h, w) float 0..1: the image as the model takes it, at the working size
    labels: list[str]  # T names of what is explained: "cat (0.93)", "car #2 (0.88)", ...
    score: Callable[[torch.Tensor], torch.Tensor]  # (B, C, h, w) float 0..1 -> (B, T)
    regions: list[Any]  # per target: bool (h, w) numpy array of where the prediction lies, or None
    original_size: tuple[int, int] = (0, 0)  # (H, W) of the image before resizing: maps are returned at this size


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

    def build_data(self, cfg: TrainConfig, meta: ModelMeta | None = None, split: str | None = None
                   ) -> TaskData:
        """Data sets for training (``split`` None: train, val and test), or for evaluation the one split to
        score, as ``val``: 'auto', 'val', 'train', 'test' or 'all' (see ``cnnkit.data.splits``). A task
        reads its data through ``cnnkit.data.request.DataRequest.from_config(cfg, meta, split)``. Without
        ``meta`` (training) the task makes the card (``ModelMeta.card``); with one (evaluation, resume) it
        reads the card's values instead."""

    def build_model(self, cfg: TrainConfig, meta: ModelMeta) -> nn.Module: ...
    def build_loss(self, cfg: TrainConfig, data: TaskData) -> Callable[[Any, Any], torch.Tensor | None]: ...
    def build_metrics(self, meta: ModelMeta, device: torch.device, options: Any = None) -> Metrics: ...

    def eval_forward(self, options: Any) -> Callable[[nn.Module, Any], Any] | None:
        """How evaluation runs the model under the prediction ``options`` that apply to it (tta, max_det);
        None: ``model(images)``."""

    def predict(self, model: nn.Module, images: list, options: Any) -> list[dict[str, Any]]:
        """PIL images -> one prediction dict per image (task-specific keys); no attribute of ``model`` changes."""

    def explain_targets(self, model: nn.Module, image: Any, request: ExplainRequest) -> ExplainTargets:
        """One PIL image -> what ``cnnkit explain`` maps in it (``cnnkit.explain``); CnnkitError, saying
        why, for a task with nothing to explain or a request it cannot meet (an unknown ``target``)."""

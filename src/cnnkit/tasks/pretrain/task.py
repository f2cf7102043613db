"""Self-supervised pretraining: data, model, loss and metrics for the engine; embeddings as predictions."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from PIL import Image
from torch import nn

from cnnkit.config import TrainConfig
from cnnkit.data.classify import load_classify_data
from cnnkit.data.images import probe_channels, probe_high
from cnnkit.data.layout import read_with
from cnnkit.data.request import DataRequest
from cnnkit.data.splits import group_regex
from cnnkit.data.transforms import channel_stats
from cnnkit.data.unlabelled import (
    ViewsDataset,
    joint_views,
    load_images,
    native_side,
    reconstruction_view,
    split_images,
)
from cnnkit.engine.task import ExplainRequest, ExplainTargets, Task, TaskData
from cnnkit.errors import CnnkitError
from cnnkit.log import LOGGER
from cnnkit.meta import ModelMeta
from cnnkit.metrics.embedding import EmbeddingMetrics
from cnnkit.models import accepts
from cnnkit.models.trunk import embed_images
from cnnkit.models.wrapper import build_image_model
from cnnkit.options import NoOptions
from cnnkit.predictor import View
from cnnkit.tasks.common import given_stats
from cnnkit.tasks.pretrain.layouts import READER
from cnnkit.tasks.pretrain.losses import PretrainLoss
from cnnkit.tasks.pretrain.view import EmbeddingView
from cnnkit.tasks.registry import get_layouts

DEFAULT_VAL_SPLIT = 0.05  # held out of the images to validate on when there is no --val
NO_LABELS = ["unlabelled"]  # the card's classes: a pretrained encoder predicts no class


def method_views(method: str, channels: int, size: int) -> tuple[Any, int]:
    """(augmentation, number of augmented views per image) of a method."""
    return (reconstruction_view(size), 1) if method == "mae" else (joint_views(channels, size), 2)


class PretrainTask(EmbeddingView):
    graph = None  # not exported: an encoder is used through its embeddings or fine-tuned
    export_hint = ("fine-tune a classify, segment, instance or detect model from it (--pretrained) and export that; "
                   "`cnnkit embed` gives its embeddings")
    options = NoOptions

    def __init__(self, spec: Any):
        super().__init__(spec)
        self.default_monitor = spec.defaults["monitor"]

    def build_data(self, cfg: TrainConfig, meta: ModelMeta | None = None, split: str | None = None
                   ) -> TaskData:
        """Training: every image of ``cfg.data`` (labels ignored), a held-out part or ``cfg.options.val``
        (labelled) to validate; evaluation: ``cfg.data`` as labelled images, scored by k-NN on the embedding."""
        method = meta.value("method", cfg.options.method) if meta else cfg.options.method
        if split is not None:
            assert meta is not None  # evaluation scores a model, whose card this is
            views, n = method_views(method, meta.in_chans, meta.imgsz)
            return TaskData(None, self.labelled(cfg.data, meta, views, n, split), meta)
        found = read_with(get_layouts(self.name), cfg.data, READER, seed=cfg.seed).extra["unlabelled"]
        if isinstance(found.items, np.ndarray):
            channels, high = found.items.shape[-1], 0.0
        else:
            channels, high = probe_channels(found.items), probe_high(found.items)
        if meta is not None:  # resumed: the card's
            channels, high = meta.in_chans, meta.pixel_max
        size = (meta.imgsz if meta else 0) or cfg.imgsz or native_side(found)
        images, files = load_images(found, channels, size, cfg.cache, cfg.skip_bad, high)
        if meta is None:  # training: the card is made from the images
            mean, std = self.stats(cfg, images, channels, size)
            meta = ModelMeta.card(task=self.name, model=cfg.model, classes=NO_LABELS, in_chans=channels, imgsz=size,
                                  pixel_max=high, mean=mean, std=std, extra={"method": method, "backbone": cfg.model})
        views, n = method_views(method, channels, size)
        request = DataRequest.from_config(cfg, meta)
        if cfg.options.val:
            if request.val_group:  # unused beside --val, but a typo is refused, as every task refuses it
                group_regex(request.val_group)
            train = ViewsDataset(images, channels, size, views, n, high=high)
            try:  # its reader's "scoring val (N images)" is about evaluating a model: the first line says what it is
                with quiet_info():
                    val = self.labelled(cfg.options.val, meta, views, n, "auto")
            except CnnkitError as e:  # its reader speaks of --data
                raise CnnkitError(f"--val {cfg.options.val}: {str(e).replace('--data', '--val')}") from None
        else:
            parts = split_images(images, files, request, request.fraction(DEFAULT_VAL_SPLIT))
            assert parts.train is not None  # held out for training: set
            train = ViewsDataset(parts.train, channels, size, views, n, high=high)
            val = ViewsDataset(parts.val, channels, size, views, n, plain=True, high=high)
        if len(train) < 2:
            raise CnnkitError(f"{cfg.data}: {len(train)} training image(s); pretraining compares images within a "
                              "batch and needs at least 2 (hundreds or more to learn much)")
        init = images[:5000] if isinstance(images, torch.Tensor) else None
        labels = f"labels of {len(val)} images of {cfg.options.val} for k-NN only" if cfg.options.val else "no labels"
        return TaskData(train, val, meta, init_batch=init, labels=labels)

    @staticmethod
    def stats(cfg: TrainConfig, images: torch.Tensor | list[Path], channels: int, size: int
              ) -> tuple[list[float], list[float]]:
        if cfg.mean:
            return given_stats(cfg, channels)
        if isinstance(images, torch.Tensor):
            return channel_stats(images)
        pick = np.random.default_rng(0).permutation(len(images))[:500]
        sample = ViewsDataset(images, channels, size, None, 0, plain=True)
        return channel_stats(torch.stack([sample.image(int(i)) for i in pick]))

    @staticmethod
    def labelled(source: str, meta: ModelMeta, views: Any, n: int, split: str) -> ViewsDataset:
        """Labelled images (any classification layout) as plain image + views, with their labels; the split
        to score is chosen by the classify reader's defaults (20% held out, seed 0), not the run's."""
        request = DataRequest(source, split=split, imgsz=meta.imgsz, channels=meta.in_chans, high=meta.pixel_max)
        data = load_classify_data(request)
        items = data.val.images if data.val.images is not None else data.val.paths
        return ViewsDataset(items, meta.in_chans, meta.imgsz, views, n, plain=True, labels=data.val.labels,
                            high=data.high)

    def build_model(self, cfg: TrainConfig, meta: ModelMeta) -> nn.Module:
        backbone_args = dict(cfg.model_args)
        if accepts(cfg.model, "input_size"):
            backbone_args.setdefault("input_size", meta.imgsz)
        args: dict[str, Any] = {"backbone": meta.value("backbone", cfg.model), "backbone_args": backbone_args,
                                "method": meta.value("method", cfg.options.method)}
        return build_image_model(meta.replace(model="selfsup", model_args=args), pretrained=cfg.pretrained)

    def build_loss(self, cfg: TrainConfig, data: TaskData) -> PretrainLoss:
        return PretrainLoss(data.meta.value("method", cfg.options.method))

    def build_metrics(self, meta: ModelMeta, device: torch.device, options: Any = None) -> EmbeddingMetrics:
        return EmbeddingMetrics(method=meta.value("method", ""))

    def eval_forward(self, options: Any) -> None:
        return None

    @torch.no_grad()
    def predict(self, model: nn.Module, images: list[Image.Image], options: Any) -> list[dict]:
        """PIL images (resized to the model's side) -> ``{"embedding": [D floats]}`` each."""
        return [{"embedding": [float(v) for v in row]} for row in embed_images(model, images).numpy()]

    def explain_targets(self, model: nn.Module, image: Any, request: ExplainRequest) -> ExplainTargets:
        """Nothing to explain: a pretrained encoder predicts no class (CnnkitError saying what to do instead)."""
        raise CnnkitError(f"{model.meta.model}: a pretraining checkpoint has no classes to explain; use `cnnkit "
                          "explain --features` to see what its layers respond to, or fine-tune it (`cnnkit train "
                          "classify --pretrained best.pt`) and explain that model")


@contextmanager
def quiet_info() -> Iterator[None]:
    """cnnkit's INFO lines off for a moment (warnings still show)."""
    level = LOGGER.level
    LOGGER.setLevel(logging.WARNING)
    try:
        yield
    finally:
        LOGGER.setLevel(level)


if TYPE_CHECKING:  # mypy checks that the class keeps the engine's Task protocol and the View protocol
    from cnnkit.tasks.pretrain import SPEC

    _task: Task = PretrainTask(SPEC)
    _view: View = PretrainTask(SPEC)

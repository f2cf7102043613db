"""Click models: data, model, loss and the NoC protocol for the engine; ``predict_clicks`` for annotation."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from PIL import Image
from torch import nn
from torch.utils.data import default_collate

from cnnkit.config import TrainConfig
from cnnkit.data.inputs import describe_inputs
from cnnkit.data.request import DataRequest
from cnnkit.engine.task import ExplainRequest, ExplainTargets, Task, TaskData
from cnnkit.errors import CnnkitError
from cnnkit.log import LOGGER
from cnnkit.meta import ModelMeta
from cnnkit.metrics.clicks import Click, NocMetrics
from cnnkit.models.click import quiet_guide
from cnnkit.models.registry import SEGMENTER, get_entry
from cnnkit.models.wrapper import build_image_model, read_cnnkit_checkpoint
from cnnkit.options import NoOptions
from cnnkit.predictor import View
from cnnkit.tasks.click.data import ClickData, ClickTrainSet, ClickValSet, crop_side, list_collate, load_click_data
from cnnkit.tasks.click.infer import iterative_forward, noc_forward, predict_clicks
from cnnkit.tasks.click.layouts import OBJECT_LAYOUTS
from cnnkit.tasks.click.losses import NormalizedFocalLoss
from cnnkit.tasks.click.view import ClickView
from cnnkit.tasks.common import given_stats, image_stats
from cnnkit.tasks.registry import get_layouts

DEFAULT_CROP = 320  # training crop side when --imgsz is not given (px; RITM trains on 320 x 480 crops)
CLICKER_MODEL = "clicker"  # the registered network around the segmenter (cnnkit.models.click)
USE_INSTEAD = ("a click model segments the object under the user's clicks, not a whole image: use `cnnkit annotate "
               "--weights WEIGHTS FOLDER`, or cnnkit.click_mask(image, clicks, weights=WEIGHTS) in Python")


def click_collate(batch: list[tuple[torch.Tensor, Any]]) -> tuple[Any, Any]:
    """Training crops (one size, targets dicts) are stacked; validation images (any size) stay a list."""
    return default_collate(batch) if isinstance(batch[0][1], dict) else list_collate(batch)


def check_segmenter(name: str) -> None:
    """``--model`` must name a segmenter: the click model is that network given clicks (CnnkitError otherwise)."""
    kind = get_entry(name).kind
    if kind != SEGMENTER:
        raise CnnkitError(f"--model {name}: a {kind} model; a click model wraps a segmenter: pick one such as "
                          "unet_basic or unet_resnet18 (`cnnkit models --task segment`)")


class ClickTask(ClickView):
    graph = None  # not exported: a click model answers clicks, not images
    options = NoOptions

    def __init__(self, spec: Any):
        super().__init__(spec)
        self.default_monitor = spec.defaults["monitor"]

    def build_data(self, cfg: TrainConfig, meta: ModelMeta | None = None, split: str | None = None
                   ) -> TaskData:
        """Training: pictures of any segment or instance layout, one object per training item; evaluation (and
        validation after each epoch): whole images at full size, every object (of at least ``min_area`` px at
        the working size; up to ``val_objects`` in training) clicked on by the NoC protocol."""
        o = cfg.options
        if meta is None:
            check_segmenter(cfg.model)
        request = DataRequest.from_config(cfg, meta, split, max_size=0)  # read at full size: see data.py
        data = load_click_data(request, get_layouts(self.name), OBJECT_LAYOUTS, o.ignore_index, o.classes_file)
        max_size = meta.max_size if meta is not None else o.max_size
        min_area = meta.value("min_area", o.min_area) if meta is not None else o.min_area
        if meta is None:
            meta = self.card(cfg, data)
        val = ClickValSet(data.val, data.reader, max_size, min_area, o.val_objects if split is None else 0, cfg.seed)
        test = None if data.test is None or split is not None else ClickValSet(data.test, data.reader, max_size,
                                                                              min_area, 0, cfg.seed)
        train = None
        if data.train is not None:
            train = ClickTrainSet(data.train, data.reader, max_size, (meta.crop[0], meta.crop[1]), o.augment,
                                  min_area, float(meta.value("click_radius", o.click_radius)))
        if max_size and split is None:
            LOGGER.info("click: images shrunk to at most %d px to train; validation clicks on each image at its own "
                        "size (the model at that working size)", max_size)
        radius = float(meta.value("click_radius", o.click_radius))
        return TaskData(train, val, meta, test=test, collate_fn=click_collate,
                        train_forward=iterative_forward(o.iterations, radius) if split is None else None,
                        labels=f"{val.objects} objects in {len(val)} images to click on")

    def card(self, cfg: TrainConfig, data: ClickData) -> ModelMeta:
        """The card of a new model: two classes (the object and the rest), one output, the working size, the crop,
        the segmenter and the click encoding."""
        assert data.train is not None  # training reads a training split
        o = cfg.options
        images = [p.image for p in data.train]
        channels, high = data.reader.channels, data.reader.high
        crop = crop_side(data.reader, data.train, cfg.imgsz, o.max_size, DEFAULT_CROP)
        mean, std = given_stats(cfg, channels) if cfg.mean else image_stats(images, channels, high)
        return ModelMeta.card(task=self.name, model=cfg.model, classes=["background", "object"], num_outputs=1,
                              in_chans=channels, imgsz=crop, crop=[crop, crop], max_size=o.max_size, mean=mean,
                              std=std, pixel_max=high, split=data.plan.to_meta() if data.plan else None,
                              inputs=describe_inputs(images, high),
                              extra={"segmenter": cfg.model, "click_radius": o.click_radius, "min_area": o.min_area,
                                     "iterations": o.iterations, "layout": data.layout})

    def build_model(self, cfg: TrainConfig, meta: ModelMeta) -> nn.Module:
        segmenter = meta.value("segmenter", cfg.model)
        args = {"segmenter": segmenter, "segmenter_args": dict(cfg.model_args)}
        model = build_image_model(meta.replace(model=CLICKER_MODEL, model_args=args), pretrained=cfg.pretrained)
        start = read_cnnkit_checkpoint(cfg.pretrained) if cfg.pretrained else None
        if start is not None and ModelMeta.from_dict(start["meta"], cfg.pretrained).model != CLICKER_MODEL:
            quiet_guide(model.net.segmenter, meta.in_chans)  # another model's encoder: its stem took RGB tiles
        return model

    def build_loss(self, cfg: TrainConfig, data: TaskData) -> NormalizedFocalLoss:
        return NormalizedFocalLoss()

    def build_metrics(self, meta: ModelMeta, device: torch.device, options: Any = None) -> NocMetrics:
        return NocMetrics()

    def eval_forward(self, options: Any):
        """The NoC protocol on every object of each image (``infer.noc_forward``): ``(objects, 20)`` IoUs."""
        return noc_forward()

    def predict(self, model: nn.Module, images: list[Image.Image], options: Any) -> list[dict]:
        raise CnnkitError(USE_INSTEAD)

    def explain_targets(self, model: nn.Module, image: Image.Image, request: ExplainRequest) -> ExplainTargets:
        raise CnnkitError(f"nothing to explain without clicks; {USE_INSTEAD}")

    @staticmethod
    def predict_clicks(model: nn.Module, image: Image.Image, clicks: Sequence[Click], prev: np.ndarray | None
                       ) -> np.ndarray:
        """The object under ``clicks`` (row ``y``, column ``x``, in ``image``'s own pixels) as ``(H, W)`` float32
        probability at ``image``'s own size; ``prev``: the previous answer ``(H, W)`` (0..1 or bool) or None.
        ``model``: the ``ImageModel`` (``cnnkit.load(path).module``). No clicks: ``prev`` (zeros without one).
        CnnkitError for a click outside the image or a ``prev`` of another size."""
        return predict_clicks(model, image, clicks, prev)


if TYPE_CHECKING:  # mypy checks that the class keeps the engine's Task protocol and the View protocol
    from cnnkit.tasks.click import SPEC

    _task: Task = ClickTask(SPEC)
    _view: View = ClickTask(SPEC)

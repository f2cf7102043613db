"""Semantic segmentation: data, model, loss, metrics, predictor and visualiser for the engine."""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from PIL import Image
from torch import nn

from cnnkit.config import TrainConfig
from cnnkit.data.images import resized_array
from cnnkit.data.inputs import describe_inputs
from cnnkit.data.masks import class_weights
from cnnkit.data.request import DataRequest
from cnnkit.data.segment import (
    SegmentDataset,
    full_res_collate,
    image_size,
    load_segment_data,
    pad_collate,
    scaled_size,
)
from cnnkit.data.transforms import SegmentTransform
from cnnkit.engine.task import ExplainRequest, ExplainTargets, Task, TaskData
from cnnkit.log import LOGGER
from cnnkit.meta import ModelMeta
from cnnkit.metrics.segmentation import SegmentationMetrics, logits_to_ids
from cnnkit.models.wrapper import build_image_model
from cnnkit.predictor import View
from cnnkit.tasks.common import class_index, given_stats, image_stats
from cnnkit.tasks.registry import get_layouts
from cnnkit.tasks.segment import SegmentOptions
from cnnkit.tasks.segment.graph import SegmentGraph
from cnnkit.tasks.segment.infer import choose_mode, predict_slide, predict_whole, resize_ids
from cnnkit.tasks.segment.losses import SegmentationLoss
from cnnkit.tasks.segment.view import SegmentView, class_areas

DEFAULT_CROP = 512  # training crop side when images differ in size and --imgsz is not given (pixels)
EXPLAIN_MIN_AREA = 0.01  # fraction of the pixels a class must be predicted on to be explained unasked
BACKGROUND_NAMES = ("background", "_background_", "bg", "void", "unlabelled", "unlabeled")


class SegmentTask(SegmentView):
    graph = SegmentGraph  # what `cnnkit export` writes: uint8 in, post-processed out
    options = SegmentOptions

    def __init__(self, spec: Any):
        super().__init__(spec)
        self.default_monitor = spec.defaults["monitor"]

    def build_data(self, cfg: TrainConfig, meta: ModelMeta | None = None, split: str | None = None
                   ) -> TaskData:
        """Training: find classes, channels, crop size, normalisation and class weights; evaluation:
        take them from ``meta`` (a checkpoint's)."""
        request = DataRequest.from_config(cfg, meta, split)
        max_size = request.max_size
        data = load_segment_data(request, classes_file=cfg.options.classes_file, ignore_index=cfg.options.ignore_index,
                                 binary=cfg.options.binary, meta=meta, layouts=get_layouts(self.name))
        if meta is None:  # training: the card is made from the training split
            assert data.train is not None
            crop = _crop_size(cfg.imgsz, data.train.images, max_size)
            mean, std = (given_stats(cfg, data.channels) if cfg.mean
                         else image_stats(data.train.images, data.channels, data.high))
            assert data.class_stats is not None  # counted on every training split
            weights = class_weights(cfg.options.class_weights, *data.class_stats)
            spec = data.spec.to_meta()
            meta = ModelMeta.card(task=self.name, model=cfg.model, classes=spec.pop("classes"),
                                  colours=spec.pop("colours"), num_outputs=1 if data.spec.binary else 0,
                                  in_chans=data.channels, imgsz=max(crop), crop=list(crop), max_size=max_size,
                                  mean=mean, std=std, pixel_max=data.high,
                                  split=data.plan.to_meta() if data.plan else None,
                                  inputs=describe_inputs(data.train.paths or data.train.images, data.high),
                                  extra={**spec, "class_weights": weights})
            if weights is not None:
                LOGGER.info("class weights (%s): %s", cfg.options.class_weights,
                            " ".join(f"{w:.3f}" for w in weights))
        # evaluation alone compares with full-size masks (logits resized per image); training validates at
        # the training scale, which is cheaper and what the model sees
        full_res = not request.training and max_size > 0
        if max_size and request.training:
            LOGGER.info("segment: images and masks (nearest) shrunk to at most %d px: validation during training "
                        "is at that scale; `cnnkit val` and predictions are at each image's full size", max_size)
        train = None
        if data.train is not None:
            transform = SegmentTransform(cfg.options.augment, (meta.crop[0], meta.crop[1]), channels=data.channels)
            train = SegmentDataset(data.train.images, data.train.masks, data.spec, data.channels, max_size, transform,
                                   high=data.high)
        val = SegmentDataset(data.val.images, data.val.masks, data.spec, data.channels, max_size,
                             scale_masks=not full_res, high=data.high)
        test = None if data.test is None else SegmentDataset(data.test.images, data.test.masks, data.spec,
                                                             data.channels, max_size, high=data.high)
        return TaskData(train, val, meta, test=test, collate_fn=full_res_collate if full_res else pad_collate)

    def build_model(self, cfg: TrainConfig, meta: ModelMeta) -> nn.Module:
        return build_image_model(meta.replace(model=cfg.model, model_args=dict(cfg.model_args)),
                                 pretrained=cfg.pretrained)

    def build_loss(self, cfg: TrainConfig, data: TaskData) -> nn.Module:
        return SegmentationLoss(cfg.options.loss or "ce", data.meta.value("class_weights", []) or None)

    def build_metrics(self, meta: ModelMeta, device: torch.device, options: Any = None
                      ) -> SegmentationMetrics:
        return SegmentationMetrics(list(meta.classes), device)

    def eval_forward(self, options: SegmentOptions):
        return self.tta_forward if options.tta else None

    @staticmethod
    def tta_forward(model: nn.Module, images: torch.Tensor) -> torch.Tensor:
        """Mean of the logits of the image and of its mirror image, mirrored back."""
        return (model(images) + model(images.flip(-1)).flip(-1)) / 2

    @torch.no_grad()
    def predict(self, model: nn.Module, images: list[Image.Image], options: SegmentOptions) -> list[dict]:
        """Per image: ``mask`` (H, W) uint8 class ids at the original size, class ``areas`` (fractions),
        and with ``probs`` the probabilities ``(K, H, W)`` float16. ``mode``: whole, slide or auto
        (slide once the image holds over 4 training crops); ``tile`` 0 = the training crop;
        ``tile_batch`` tiles go through the model at a time (memory grows with it)."""
        meta = model.meta
        tile_hw = (options.tile, options.tile) if options.tile else tuple(meta.crop)
        out = []
        for pil in images:
            width, height = pil.size
            size = scaled_size(width, height, meta.max_size)
            array = resized_array(pil, meta.in_chans, size, meta.pixel_max)
            tensor = torch.from_numpy(array).permute(2, 0, 1).contiguous()
            if choose_mode(options.mode, (size[1], size[0]), tile_hw) == "slide":
                ids, p = predict_slide(model, tensor, tile_hw, options.overlap, options.tta, options.tile_batch,
                                       options.probs)
            else:
                ids, p = predict_whole(model, tensor, options.tta, options.probs, size=(height, width))
            ids = resize_ids(ids, (height, width))
            out.append({"mask": ids, "probs": p, "areas": class_areas(ids, list(meta.classes)),
                        "size": [width, height]})
        return out

    @torch.no_grad()
    def explain_targets(self, model: nn.Module, image: Image.Image, request: ExplainRequest) -> ExplainTargets:
        """The ``request.target`` class, else each class predicted on at least EXPLAIN_MIN_AREA of the pixels
        (background only when it is all there is), on the image at ``predict``'s whole-image working size. A
        class's score is its mean logit over the pixels predicted as it (over all pixels where it is predicted
        nowhere); a binary model's background scores minus the foreground logit."""
        meta = model.meta
        classes = list(meta.classes)
        width, height = image.size
        array = resized_array(image, meta.in_chans, scaled_size(width, height, meta.max_size), meta.pixel_max)
        inputs = torch.from_numpy(array).permute(2, 0, 1)[None].float().div(255).to(next(model.parameters()).device)
        ids = logits_to_ids(model(inputs).float())[0]
        areas = torch.bincount(ids.flatten(), minlength=len(classes)).float() / ids.numel()
        target = "" if request.target is None else str(request.target)
        if target:
            chosen = [class_index(target, classes)]
        else:
            background = _background_classes(meta)
            shown = [c for c in areas.argsort(descending=True).tolist() if areas[c] >= EXPLAIN_MIN_AREA]
            chosen = [c for c in shown if c not in background] or shown[:1]
        masks = torch.stack([(ids == c) if bool((ids == c).any()) else torch.ones_like(ids, dtype=torch.bool)
                             for c in chosen]).float()  # (T, h, w)
        index = torch.tensor(chosen, device=inputs.device)
        binary = meta.num_outputs == 1

        def score(x: torch.Tensor) -> torch.Tensor:
            logits = model(x).float()
            per_class = torch.cat([-logits, logits], 1)[:, index] if binary else logits[:, index]  # (B, T, h, w)
            return (per_class * masks).sum((2, 3)) / masks.sum((1, 2))

        return ExplainTargets(inputs=inputs, labels=[f"{classes[c]} ({float(areas[c]):.0%} of pixels)" for c in chosen],
                              score=score, regions=[(ids == c).cpu().numpy() for c in chosen],
                              original_size=(height, width))


def _background_classes(meta: ModelMeta) -> set[int]:
    """Classes that are no object: named background (or void), a binary model's class 0, or class 0 of classes
    named after mask values (class_0, ...)."""
    names = [c.lower() for c in meta.classes]
    found = {i for i, n in enumerate(names) if n in BACKGROUND_NAMES}
    if meta.num_outputs == 1 or (names and names[0] in ("class_0", "0")):
        found.add(0)
    return found


def _crop_size(imgsz: int, images: list, max_size: int) -> tuple[int, int]:
    """``imgsz`` square, or the images' own (H, W) when they all share one, else DEFAULT_CROP."""
    if imgsz:
        return imgsz, imgsz
    if images and isinstance(images[0], np.ndarray):
        sizes = Counter(im.shape[:2] for im in images)
    else:  # streamed from disk: the headers of the first files tell
        sizes = Counter(scaled_size(*image_size(p), max_size)[::-1] for p in images[:64])
    if len(sizes) == 1:
        return next(iter(sizes))
    LOGGER.warning("segment: images differ in size; training on %d px crops (set --imgsz to choose)", DEFAULT_CROP)
    return DEFAULT_CROP, DEFAULT_CROP


if TYPE_CHECKING:  # mypy checks that the class keeps the engine's Task protocol and the View protocol
    from cnnkit.tasks.segment import SPEC

    _task: Task = SegmentTask(SPEC)
    _view: View = SegmentTask(SPEC)

"""Instance segmentation (Mask R-CNN) and detection (Faster R-CNN): data, model, loss, metrics,
predictor and visualiser for the engine. ``detect`` is the same task with boxes only."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from PIL import Image
from torch import nn

from cnnkit.config import TrainConfig
from cnnkit.data.images import pil_to_array
from cnnkit.data.inputs import describe_inputs
from cnnkit.data.instance import InstanceDataset, InstanceTransform, list_collate
from cnnkit.data.instance_data import boxes_without_masks, load_instance_data
from cnnkit.data.request import DataRequest
from cnnkit.engine.task import ExplainRequest, ExplainTargets, Task, TaskData
from cnnkit.errors import CnnkitError
from cnnkit.log import LOGGER
from cnnkit.meta import ModelMeta
from cnnkit.metrics.coco import COCOMetrics
from cnnkit.models.wrapper import build_image_model
from cnnkit.options import make_options
from cnnkit.predictor import View
from cnnkit.tasks.common import given_stats, image_stats
from cnnkit.tasks.instance import DEFAULT_DETECTIONS, InstanceOptions, working_scale
from cnnkit.tasks.instance.explain import detection_targets
from cnnkit.tasks.instance.graph import DetectGraph
from cnnkit.tasks.instance.infer import (
    Detection,
    PostProcess,
    detect,
    detect_image,
    detect_tiled,
    grown_forward,
    grown_samples,
    scaled_image,
    to_instances,
)
from cnnkit.tasks.instance.view import InstanceView
from cnnkit.tasks.registry import get_layouts

DEFAULT_CROP = 512  # training crop side when --imgsz is not given (pixels)
EXPLAIN_CROPS = 4  # an explained image is at most this many training crops in area: predict tiles larger ones


def detection_losses(outputs: Any, targets: Any) -> torch.Tensor | None:
    """The sum of the model's own losses (RPN objectness and boxes, class, box, mask); None in eval mode."""
    return sum(outputs.values()) if isinstance(outputs, dict) else None


def forward_with_targets(model: nn.Module, images: list[torch.Tensor], targets: list[dict]) -> Any:
    """The training forward: the losses of ``images`` (``(C, H, W)`` each; a small one grown) and ``targets``."""
    return model(*grown_samples(images, targets))


def any_objects(items: list, sample: int = 200) -> bool:
    """Whether any of up to ``sample`` items (spread over the list) holds an object; instance maps are read."""
    from cnnkit.data.instance import read_id_map

    for i in sorted({int(i) for i in np.linspace(0, len(items) - 1, min(sample, len(items)))}):
        objects = items[i].objects
        if objects.id_map is not None:
            ids = read_id_map(Path(objects.id_map)) if isinstance(objects.id_map, (str, Path)) else objects.id_map
            if ids.max(initial=0) > 0:
                return True
        elif objects.mask_files or (objects.boxes is not None and len(objects.boxes)):
            return True
    return not items


class InstanceTask(InstanceView):
    """``masks=True``: the instance task (Mask R-CNN); ``masks=False``: detect (Faster R-CNN)."""

    graph = DetectGraph  # what `cnnkit export` writes: uint8 in, post-processed out
    options = InstanceOptions

    def __init__(self, spec: Any):
        super().__init__(spec)
        self.default_monitor = spec.defaults["monitor"]

    def build_data(self, cfg: TrainConfig, meta: ModelMeta | None = None, split: str | None = None
                   ) -> TaskData:
        data = load_instance_data(DataRequest.from_config(cfg, meta, split),
                                  classes=list(meta.classes) if meta else None, layouts=get_layouts(self.name))
        if self.masks and not any(item.objects.has_masks for item in (data.train or data.val)[:50]):
            raise CnnkitError(f"{cfg.data}: the annotations have boxes but no masks; train with --task detect")
        if data.train is not None and meta is None and not any_objects(data.train):
            raise CnnkitError(f"{cfg.data}: no objects in the training images (every instance map is 0, or every "
                              "label list is empty): nothing to learn; check the annotations")
        boxes, first = boxes_without_masks((data.train or []) + data.val) if self.masks else (0, None)
        if boxes:
            LOGGER.warning("warning: %d object(s) have a box but no mask (e.g. in %s's labels); each box serves as "
                           "its object's mask", boxes, first)
        max_size = meta.max_size if meta else cfg.options.max_size
        if meta is None:  # training: the card is made from the training split
            assert data.train is not None
            crop = cfg.imgsz or DEFAULT_CROP
            mean, std = (given_stats(cfg, data.channels) if cfg.mean
                         else image_stats([i.image for i in data.train], data.channels, data.high))
            detections = int(cfg.model_args.get("detections", DEFAULT_DETECTIONS))
            extra: dict[str, Any] = {"detections": detections, "layout": data.layout}
            if data.category_ids:  # read from COCO files: coco_results.json is written in their ids
                extra.update(coco_category_ids=data.category_ids, coco_files=data.coco_files)
            meta = ModelMeta.card(task=self.name, model=cfg.model, classes=data.classes, in_chans=data.channels,
                                  imgsz=crop, crop=[crop, crop], max_size=max_size, mean=mean, std=std,
                                  pixel_max=data.high, split=data.plan.to_meta() if data.plan else None,
                                  inputs=describe_inputs([i.image for i in data.train], data.high), extra=extra)
        train = None
        if data.train is not None:
            transform = InstanceTransform(cfg.options.augment, (meta.crop[0], meta.crop[1]), cfg.options.shift_augment)
            train = InstanceDataset(data.train, data.channels, transform, max_size, drop_crowd=True, masks=self.masks,
                                    high=data.high)
        val = InstanceDataset(data.val, data.channels, None, max_size, masks=self.masks, high=data.high)
        test = None if data.test is None else InstanceDataset(data.test, data.channels, None, max_size,
                                                              masks=self.masks, high=data.high)
        return TaskData(train, val, meta, test=test, collate_fn=list_collate, train_forward=forward_with_targets)

    def build_model(self, cfg: TrainConfig, meta: ModelMeta) -> nn.Module:
        args = {"detections": meta.value("detections", DEFAULT_DETECTIONS), **dict(cfg.model_args)}
        return build_image_model(meta.replace(model=cfg.model, model_args=args), pretrained=cfg.pretrained)

    def build_loss(self, cfg: TrainConfig, data: TaskData):
        return detection_losses

    def build_metrics(self, meta: ModelMeta, device: torch.device, options: Any = None) -> COCOMetrics:
        limit = (options.max_det if options is not None else 0) or meta.value("detections", DEFAULT_DETECTIONS)
        return COCOMetrics(list(meta.classes), masks=self.masks, max_dets=limit)

    def eval_forward(self, options: InstanceOptions):
        """Small images (longer side under ``MIN_SIDE``) grown as ``predict`` grows them, their boxes mapped back;
        with ``max_det``, the model returns up to that many objects (COCO's maxDets follows it)."""
        def run(model: nn.Module, images: list[torch.Tensor]) -> list[dict]:
            if not options.max_det:
                return model(images)
            heads = model.net.roi_heads
            return detect(model, images, PostProcess(heads.score_thresh, heads.nms_thresh, options.max_det))

        def forward(model: nn.Module, images: list[torch.Tensor]) -> list[dict]:
            return grown_forward(run, model, images)
        return forward

    @torch.no_grad()
    def predict(self, model: nn.Module, images: list[Image.Image], options: InstanceOptions) -> list[dict]:
        """Per image: ``instances``, each with class, class_id, score, box [x0, y0, x1, y1] (pixels) and
        (instance task) an RLE mask at the original size; ``size`` [W, H].

        ``score_thresh``: lowest score kept; ``nms_thresh``: box IoU above which the lower-scored of
        two same-class detections is dropped; ``max_det``: most objects per image (0: the model's limit, per
        tile for a tiled image; a cap that drops objects is logged as a warning).
        Images over four training crops (or any with ``tile`` > 0 as the tile side) are tiled with
        ``overlap`` (fraction of a tile) and objects cut by tile borders are merged.
        The thresholds go to the post-processing of this call; the model is not changed.
        """
        meta = model.meta
        # the model keeps its own limit; max_det cuts afterwards, where a cut can be counted and said
        own = meta.value("detections", DEFAULT_DETECTIONS)
        post = PostProcess(options.score_thresh, options.nms_thresh, max(options.max_det, own))
        out, capped = [], 0
        for pil in images:
            tensor, factor = self._working_image(pil, meta)
            tiled = options.tile > 0 or tensor.shape[1] * tensor.shape[2] > 4 * meta.crop[0] * meta.crop[1]
            dets = (detect_tiled(model, tensor, options.tile or 2 * max(meta.crop), options.overlap,
                                 options.tile_batch, post) if tiled else detect_image(model, tensor, post))
            # a tiled image keeps what its tiles found (each up to the model's limit) unless max_det caps it
            limit = options.max_det or (0 if tiled else post.detections)
            dets = sorted(dets, key=lambda d: -d.score)
            if limit and len(dets) > limit:
                capped += 1
                dets = dets[:limit]
            out.append({"size": list(pil.size), "instances": to_instances(dets, list(meta.classes), factor,
                                                                          (pil.height, pil.width), self.masks)})
        if capped and options.max_det:
            LOGGER.warning("%d image(s) held more than --max-det %d objects; the lowest-scored were dropped "
                           "(raise --max-det to keep them)", capped, options.max_det)
        return out

    def explain_targets(self, model: nn.Module, image: Image.Image, request: ExplainRequest) -> ExplainTargets:
        """The detections of ``image`` above ``score_thresh`` (``request.options``, else the defaults), one
        target each (``cnnkit.tasks.instance.explain``): at most 10 by score, or those of the class
        ``request.target`` names, or its ``#k``, the k-th by score (as ``predict`` orders them); each scored by
        its matched detection's score. The inputs are the working image (shrunk to ``max_size``, a small one
        grown) whole: an image ``predict`` would tile is explained untiled, shrunk to EXPLAIN_CROPS training crops
        of area (memory; the objects near the size trained on), so its detections may differ from the tiled
        prediction's. CnnkitError when nothing is detected or ``target`` matches no detection."""
        options = request.options if request.options is not None else self.options()
        if isinstance(options, dict):
            options = make_options(self.options, options, self.name)
        tensor, _ = self._working_image(image, model.meta)
        limit = EXPLAIN_CROPS * model.meta.crop[0] * model.meta.crop[1]
        area = tensor.shape[1] * tensor.shape[2]
        if area > limit:  # predict tiles it; whole, it would be objects smaller than trained on, and out of memory
            tensor = scaled_image(tensor, (limit / area) ** 0.5)
        try:
            return detection_targets(model, tensor, request, options, (image.height, image.width),
                                     model.meta.value("detections", DEFAULT_DETECTIONS))
        except CnnkitError as e:
            if area <= limit:
                raise
            raise CnnkitError(f"{e} (an image this large is explained whole, shrunk to {tensor.shape[2]}x"
                              f"{tensor.shape[1]} px, where predict tiles it: crop the region to explain)") from None

    @staticmethod
    def _working_image(pil: Image.Image, meta: Any) -> tuple[torch.Tensor, float]:
        """``(C, h, w)`` uint8 at the working scale and the scale factor: shrunk to ``max_size``, and a small
        image grown to ``MIN_SIDE`` (a detector cannot run a smaller one; predictions go back by the factor)."""
        array = pil_to_array(pil, meta.in_chans, meta.pixel_max)
        height, width = array.shape[:2]
        factor = working_scale(height, width, meta.max_size)
        return scaled_image(torch.from_numpy(array).permute(2, 0, 1).contiguous(), factor), factor


__all__ = ["InstanceTask", "Detection"]


if TYPE_CHECKING:  # mypy checks that the class keeps the engine's Task protocol and the View protocol
    from cnnkit.tasks.instance import SPEC

    _task: Task = InstanceTask(SPEC)
    _view: View = InstanceTask(SPEC)

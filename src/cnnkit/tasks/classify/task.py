"""Image classification: data, model, loss, metrics, predictor and visualiser for the engine."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from PIL import Image
from torch import nn

from cnnkit.config import TrainConfig
from cnnkit.data.classify import ClassifyDataset, load_classify_data
from cnnkit.data.images import image_to_array
from cnnkit.data.inputs import describe_inputs
from cnnkit.data.request import DataRequest
from cnnkit.data.transforms import build_batch_transform, build_train_transform, channel_stats
from cnnkit.engine.task import ExplainRequest, ExplainTargets, Task, TaskData
from cnnkit.errors import CnnkitError
from cnnkit.meta import ModelMeta
from cnnkit.metrics.classification import ClassificationMetrics
from cnnkit.models import accepts
from cnnkit.models.wrapper import build_image_model
from cnnkit.predictor import View
from cnnkit.tasks.classify import ClassifyOptions
from cnnkit.tasks.classify.graph import ClassifyGraph
from cnnkit.tasks.classify.view import ClassifyView, topk_records
from cnnkit.tasks.common import class_index, given_stats
from cnnkit.tasks.registry import get_layouts

INIT_SAMPLES = 5000  # training images used for data-dependent initialisation (whitening)


def _images_of(split) -> list:
    """Paths of a streamed split, or (H, W, C) arrays of up to 100 of a decoded one."""
    if split.paths is not None:
        return split.paths
    pick = np.linspace(0, len(split) - 1, min(100, len(split))).astype(int)
    return [split.images[int(i)].permute(1, 2, 0).numpy() for i in pick]


class ClassifyTask(ClassifyView):
    graph = ClassifyGraph  # what `cnnkit export` writes: uint8 in, post-processed out
    options = ClassifyOptions

    def __init__(self, spec: Any):
        super().__init__(spec)
        self.default_monitor = spec.defaults["monitor"]

    def build_data(self, cfg: TrainConfig, meta: ModelMeta | None = None, split: str | None = None
                   ) -> TaskData:
        """Training: infer classes, channels, size and normalisation; evaluation: take them from ``meta``."""
        data = load_classify_data(DataRequest.from_config(cfg, meta, split),
                                  classes=list(meta.classes) if meta else None, layouts=get_layouts(self.name))
        if meta is None:  # training: the card is made from the training split
            assert data.train is not None
            if cfg.mean:
                mean, std = given_stats(cfg, data.channels)
            elif data.train is not None and data.train.images is not None:
                mean, std = channel_stats(data.train.images)
            else:
                mean, std = self._streamed_stats(data)
            meta = ModelMeta.card(task=self.name, model=cfg.model, classes=data.classes, in_chans=data.channels,
                                  imgsz=data.imgsz, mean=mean, std=std, pixel_max=data.high,
                                  split=data.plan.to_meta() if data.plan else None,
                                  inputs=describe_inputs(_images_of(data.train), data.high))
        transform = build_train_transform(cfg.options.augment, data.imgsz, data.channels)
        train = None if data.train is None else ClassifyDataset(data.train, data.channels, data.imgsz, transform,
                                                                data.high)
        val = ClassifyDataset(data.val, data.channels, data.imgsz, high=data.high)
        test = None if data.test is None else ClassifyDataset(data.test, data.channels, data.imgsz, high=data.high)
        init = None
        if train is not None and data.train is not None and data.train.images is not None:
            g = torch.Generator().manual_seed(cfg.seed)
            init = data.train.images[torch.randperm(len(data.train), generator=g)[:INIT_SAMPLES]]
        batch_aug = build_batch_transform(cfg.options.augment, data.imgsz)
        batch_transform = None if batch_aug is None else (lambda images, targets: (batch_aug(images), targets))
        return TaskData(train, val, meta, test=test, init_batch=init, batch_transform=batch_transform)

    @staticmethod
    def _streamed_stats(data) -> tuple[list[float], list[float]]:
        ds = ClassifyDataset(data.train, data.channels, data.imgsz, high=data.high)
        pick = np.random.default_rng(0).permutation(len(ds))[:500]
        return channel_stats(torch.stack([ds[int(i)][0] for i in pick]))

    def build_model(self, cfg: TrainConfig, meta: ModelMeta) -> nn.Module:
        model_args = dict(cfg.model_args)
        if accepts(cfg.model, "input_size"):  # models with a fixed-size head are built for the data's size
            model_args.setdefault("input_size", meta.imgsz)
        return build_image_model(meta.replace(model=cfg.model, model_args=model_args), pretrained=cfg.pretrained)

    def build_loss(self, cfg: TrainConfig, data: TaskData):
        return nn.CrossEntropyLoss(label_smoothing=cfg.options.label_smoothing)

    def build_metrics(self, meta: ModelMeta, device: torch.device, options: Any = None
                      ) -> ClassificationMetrics:
        return ClassificationMetrics(list(meta.classes), device)

    def eval_forward(self, options: ClassifyOptions):
        return self.tta_forward if options.tta else None

    @staticmethod
    def tta_forward(model: nn.Module, images: torch.Tensor) -> torch.Tensor:
        """Mean of the logits of the image and its mirror image."""
        return (model(images) + model(images.flip(-1))) / 2

    @torch.no_grad()
    def predict(self, model: nn.Module, images: list[Image.Image], options: ClassifyOptions) -> list[dict]:
        """PIL images (any size; resized to the model's) -> per image top-k classes with probabilities."""
        meta = model.meta
        arrays = [torch.from_numpy(image_to_array(im, meta.in_chans, meta.imgsz, meta.pixel_max)).permute(2, 0, 1)
                  for im in images]
        batch = torch.stack(arrays).to(next(model.parameters()).device)
        logits = self.tta_forward(model, batch) if options.tta else model(batch)
        return topk_records(logits.float().softmax(1).cpu().numpy(), list(meta.classes), options.topk)

    @torch.no_grad()
    def explain_targets(self, model: nn.Module, image: Image.Image, request: ExplainRequest) -> ExplainTargets:
        """The ``request.target`` class (a name or an index), else the ``request.topk`` most probable classes;
        each scored by its logit, on the image resized as ``predict`` resizes it."""
        meta = model.meta
        classes = list(meta.classes)
        array = image_to_array(image, meta.in_chans, meta.imgsz, meta.pixel_max)
        inputs = torch.from_numpy(array).permute(2, 0, 1)[None].float().div(255).to(next(model.parameters()).device)
        probs = model(inputs).float().softmax(1)[0].cpu()
        target = "" if request.target is None else str(request.target)
        if target and request.topk > 1:
            raise CnnkitError(f"--target {target} --topk {request.topk}: one names the class, the other the K most "
                              "probable ones; give one of them")
        if target:
            chosen = [class_index(target, classes)]
        else:
            chosen = probs.argsort(descending=True)[:max(1, min(request.topk, len(classes)))].tolist()
        index = torch.tensor(chosen, device=inputs.device)
        return ExplainTargets(inputs=inputs, labels=[f"{classes[c]} ({float(probs[c]):.2f})" for c in chosen],
                              score=lambda x: model(x).float()[:, index], regions=[None] * len(chosen),
                              original_size=(image.height, image.width))


if TYPE_CHECKING:  # mypy checks that the class keeps the engine's Task protocol and the View protocol
    from cnnkit.tasks.classify import SPEC

    _task: Task = ClassifyTask(SPEC)
    _view: View = ClassifyTask(SPEC)

"""Recognition by embedding: data, model, loss and open-set metrics for the engine; embeddings as predictions."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from PIL import Image
from torch import nn
from torch.utils.data import Dataset

from cnnkit.config import TrainConfig
from cnnkit.data.classify import ClassifyDataset, Split, load_classify_data
from cnnkit.data.inputs import describe_inputs
from cnnkit.data.request import DataRequest
from cnnkit.data.transforms import BatchRelight, build_batch_transform, build_train_transform, channel_stats
from cnnkit.engine.task import ExplainRequest, ExplainTargets, Task, TaskData
from cnnkit.errors import CnnkitError
from cnnkit.log import LOGGER
from cnnkit.meta import ModelMeta
from cnnkit.metrics.verification import VerificationMetrics
from cnnkit.models import accepts
from cnnkit.models.embedding import fingerprint
from cnnkit.models.trunk import embed_images
from cnnkit.models.wrapper import build_image_model
from cnnkit.options import NoOptions
from cnnkit.predictor import View
from cnnkit.tasks.common import given_stats
from cnnkit.tasks.recognize.explain import similarity_targets
from cnnkit.tasks.recognize.graph import RecognizeGraph
from cnnkit.tasks.recognize.view import RecognizeView
from cnnkit.tasks.registry import get_layouts

INIT_SAMPLES = 5000  # training images used for data-dependent initialisation (whitening)


class PairDataset(Dataset):
    """Yields ``(2, C, H, W)`` uint8: image ``i`` and another image of its identity (drawn afresh each time), and
    the identity: every batch then holds positive pairs, which the pair-based losses need and the margin losses
    do not mind, whatever the sampler (so resume and several processes work as for any task)."""

    def __init__(self, images: ClassifyDataset, labels: np.ndarray):
        self.images, self.labels = images, labels
        order = np.argsort(labels, kind="stable")
        starts = np.r_[0, np.flatnonzero(np.diff(labels[order])) + 1]
        self.members = {int(labels[order[s]]): order[s:e] for s, e in zip(starts, np.r_[starts[1:], len(order)])}

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        label = int(self.labels[i])
        others = self.members[label]
        j = int(others[int(torch.randint(len(others), ()))])
        if j == i and len(others) > 1:  # another image, not the same one twice
            j = int(others[(int(np.flatnonzero(others == i)[0]) + 1) % len(others)])
        return torch.stack([self.images[i][0], self.images[j][0]]), label


def flatten_pairs(augment: Any, relight: Any = None) -> Any:
    """(images ``(N, 2, C, H, W)``, identities ``(N,)``) -> ``(2N, C, H, W)`` and ``(2N,)``, augmented by the
    batch transforms ``augment`` and ``relight`` (each may be None)."""
    def transform(images: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        images = images.flatten(0, 1)
        targets = targets.repeat_interleave(2)
        for step in (augment, relight):
            if step is not None:
                images = step(images)
        return images, targets
    return transform


def train_forward(model: nn.Module, images: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """The metric loss, computed inside the network (its class centres are weights the optimiser trains)."""
    return model(images, targets)


def metric_loss(outputs: torch.Tensor, targets: Any) -> torch.Tensor | None:
    """Training: the loss the network computed; evaluation: None, since held-out identities have no centres."""
    return outputs if outputs.ndim == 0 else None


def refuse_singletons(split: Split, classes: list[str], origin: str, part: str) -> None:
    """An identity with one image gives no pair to learn from or score: refused, naming its folder."""
    counts = Counter(int(x) for x in split.labels)
    lone = sorted(classes[c] for c, n in counts.items() if n < 2)
    if not lone:
        return
    where = origin
    if split.paths is not None:
        first = next(p for p, x in zip(split.paths, split.labels) if classes[int(x)] == lone[0])
        where = str(Path(first).parent)
    raise CnnkitError(f"{where}: identity '{lone[0]}' has one image in the {part} split"
                      + (f" (and {len(lone) - 1} more identities)" if len(lone) > 1 else "")
                      + "; recognition learns and is scored on pairs of images of one identity: add a second "
                      "image of each, or remove them")


class RecognizeTask(RecognizeView):
    graph = RecognizeGraph  # what `cnnkit export` writes: uint8 in, embeddings out
    options = NoOptions

    def __init__(self, spec: Any):
        super().__init__(spec)
        self.default_monitor = spec.defaults["monitor"]
        self.default_val_split = float(spec.defaults["val_split"])

    def build_data(self, cfg: TrainConfig, meta: ModelMeta | None = None, split: str | None = None
                   ) -> TaskData:
        """Training: identities held out whole for validation (``--val-split``: the fraction of images they
        hold); evaluation: the split asked for, scored open-set (the held-out identities of the data trained
        on, or all of another data set)."""
        # --val-split 0 is the task's default, as its help says (the classify reader's own default is 20%)
        request = DataRequest.from_config(cfg, meta, split, whole_classes=True,
                                          val_split=cfg.val_split or self.default_val_split)
        data = load_classify_data(request, layouts=get_layouts(self.name))
        origin = str(cfg.data)
        refuse_singletons(data.val, data.classes, origin, "validation" if split is None else split)
        if data.train is not None:
            refuse_singletons(data.train, data.classes, origin, "training")
        held = len(np.unique(data.val.labels))
        if held < 2:
            how = "raise --val-split, or add identities" if split is None else "score data of 2 identities or more"
            raise CnnkitError(f"{origin}: validation holds {held} identity; open-set figures compare identities, so "
                              f"it needs 2 or more: {how}")
        val = ClassifyDataset(data.val, data.channels, data.imgsz, high=data.high)
        if split is not None:
            assert meta is not None  # evaluation scores a model, whose card this is
            seen = sorted(set(data.classes[i] for i in np.unique(data.val.labels)) & set(meta.classes))
            if seen:
                LOGGER.warning("warning: %d of the identities scored (%s, ...) were trained on: these figures are not "
                               "open-set and flatter the model (--split val scores those held out)", len(seen),
                               seen[0])
            return TaskData(None, val, meta, labels=f"{len(np.unique(data.val.labels))} identities")
        assert data.train is not None  # training loads train, val (and test)
        trained = np.unique(data.train.labels)
        if len(trained) < 2:
            raise CnnkitError(f"{origin}: {len(trained)} identity left to train on once validation holds out its own; "
                              "recognition needs 2 or more (tens for a useful model): add identities, or lower "
                              "--val-split")
        self.warn_shared(trained, data.val.labels, data.classes)
        unseen = [data.classes[i] for i in np.unique(data.val.labels) if i not in set(trained.tolist())]
        if unseen:
            LOGGER.info("validation identities, never trained on: %s", ", ".join(unseen[:10])
                        + (f" ... ({len(unseen)})" if len(unseen) > 10 else ""))
        remap = np.full(len(data.classes), -1, np.int64)
        remap[trained] = np.arange(len(trained))
        data.train.labels = remap[data.train.labels]
        if meta is None:
            meta = self.card(cfg, data, [data.classes[i] for i in trained])
        transform = build_train_transform(cfg.options.augment, data.imgsz, data.channels)
        train = PairDataset(ClassifyDataset(data.train, data.channels, data.imgsz, transform, data.high),
                            data.train.labels)
        test = None if data.test is None else ClassifyDataset(data.test, data.channels, data.imgsz, high=data.high)
        init = None
        if data.train.images is not None:
            g = torch.Generator().manual_seed(cfg.seed)
            init = data.train.images[torch.randperm(len(data.train), generator=g)[:INIT_SAMPLES]]
        n_val = len(np.unique(data.val.labels))
        relight = BatchRelight(cfg.options.relight) if cfg.options.relight else None
        return TaskData(train, val, meta, test=test, init_batch=init,
                        batch_transform=flatten_pairs(build_batch_transform(cfg.options.augment, data.imgsz), relight),
                        train_forward=train_forward,
                        labels=f"{len(trained)} identities to train, {n_val} held out to validate")

    def card(self, cfg: TrainConfig, data: Any, identities: list[str]) -> ModelMeta:
        """The card of a new model: the training identities are its classes (the margin losses' centres)."""
        if cfg.mean:
            mean, std = given_stats(cfg, data.channels)
        elif data.train.images is not None:
            mean, std = channel_stats(data.train.images)
        else:
            ds = ClassifyDataset(data.train, data.channels, data.imgsz, high=data.high)
            pick = np.random.default_rng(0).permutation(len(ds))[:500]
            mean, std = channel_stats(torch.stack([ds[int(i)][0] for i in pick]))
        o = cfg.options
        sample = data.train.paths if data.train.paths is not None else []
        return ModelMeta.card(task=self.name, model=cfg.model, classes=identities, in_chans=data.channels,
                              imgsz=data.imgsz, mean=mean, std=std, pixel_max=data.high,
                              split=data.plan.to_meta() if data.plan else None,
                              inputs=describe_inputs(sample[:100], data.high) if sample else None,
                              extra={"backbone": cfg.model, "loss": o.loss, "dim": o.dim, "normalise": o.normalise,
                                     "prewhiten": o.prewhiten, "flip_average": o.flip_average, "distance": "cosine",
                                     "target_far": o.target_far})

    @staticmethod
    def warn_shared(trained: np.ndarray, val_labels: np.ndarray, classes: list[str]) -> None:
        """A val/ folder of identities also trained on: its figures are not open-set."""
        shared = sorted(set(int(x) for x in np.unique(val_labels)) & set(int(x) for x in trained))
        if shared:
            LOGGER.warning("warning: %d validation identities (%s, ...) are also in training; recognition is "
                           "scored on identities never seen, so these figures flatter the model: put whole "
                           "identities in val/, or drop val/ and cnnkit holds some out", len(shared),
                           classes[shared[0]])

    def build_model(self, cfg: TrainConfig, meta: ModelMeta) -> nn.Module:
        backbone = meta.value("backbone", cfg.model)
        backbone_args = dict(cfg.model_args)
        if accepts(backbone, "input_size"):
            backbone_args.setdefault("input_size", meta.imgsz)
        o = cfg.options
        args: dict[str, Any] = {"backbone": backbone, "backbone_args": backbone_args,
                                "dim": meta.value("dim", o.dim), "normalise": meta.value("normalise", o.normalise),
                                "loss": meta.value("loss", o.loss), "margin": o.margin, "scale": o.scale,
                                "prewhiten": meta.value("prewhiten", o.prewhiten),
                                "flip_average": meta.value("flip_average", o.flip_average)}
        return build_image_model(meta.replace(model="embedder", model_args=args), pretrained=cfg.pretrained)

    def build_loss(self, cfg: TrainConfig, data: TaskData) -> Any:
        return metric_loss

    def build_metrics(self, meta: ModelMeta, device: torch.device, options: Any = None) -> VerificationMetrics:
        return VerificationMetrics(target_far=float(meta.value("target_far", 0.001)))

    def eval_forward(self, options: Any) -> None:
        return None

    @staticmethod
    def export_card(model: Any) -> ModelMeta:
        """The card an exported file carries: the checkpoint's, with its weights' fingerprint, so that a gallery
        built with the checkpoint is searched with the export (and refused by any other model)."""
        return model.meta.replace(extra={**model.meta.extra, "fingerprint": fingerprint(model.module)})

    @torch.no_grad()
    def predict(self, model: nn.Module, images: list[Image.Image], options: Any) -> list[dict]:
        """PIL images (resized to the model's side) -> ``{"embedding": [D floats]}`` each, unit length."""
        return [{"embedding": [float(v) for v in row]} for row in embed_images(model, images).numpy()]

    def explain_targets(self, model: nn.Module, image: Image.Image, request: ExplainRequest) -> ExplainTargets:
        """One target: the cosine similarity of ``image``'s embedding to ``request.reference``'s, both embedded
        as ``predict`` embeds them (``cnnkit.tasks.recognize.explain``); CnnkitError without a reference."""
        return similarity_targets(model, image, request)


if TYPE_CHECKING:  # mypy checks that the class keeps the engine's Task protocol and the View protocol
    from cnnkit.tasks.recognize import SPEC

    _task: Task = RecognizeTask(SPEC)
    _view: View = RecognizeTask(SPEC)

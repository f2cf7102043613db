"""What a data loader is asked for: one request, the same for every task.

Every loader (``load_classify_data``, ``load_segment_data``, ``load_instance_data``, pretraining's
images) takes a :class:`DataRequest` and only the few arguments of its own task (classes, a classes
file, ...). The request is built once from the run's config (and, when evaluating or resuming, the
model's card) by :meth:`DataRequest.from_config`, so the config fields every task reads are read in
one place, and training is told from evaluation by one explicit switch, ``split``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from cnnkit.errors import CnnkitError
from cnnkit.meta import ModelMeta

EVAL_SPLITS = ("auto", "val", "train", "test", "all")  # what ``cnnkit val --split`` may score


@dataclass(frozen=True)
class DataRequest:
    """The data of one run: where it is, how it is split and read.

    ``split`` is the train/eval switch: None when training (train, val and test are loaded, val held
    out of train when there is no val split), else the one split to score, loaded as ``val``: 'auto'
    (the validation images, or all of another data set), 'val', 'train', 'test' or 'all' (see
    ``cnnkit.data.splits``). ``channels``, ``high`` and ``trained`` come from a model's card (0, None
    and None: found in the data; no saved split plan)."""

    source: str
    split: str | None = None
    imgsz: int = 0  # 0: the images' own side (classify); segment and instance crop by their own rules
    val_split: float = 0.0  # 0: the task's default fraction
    val_group: str = ""  # --val-group: hold out whole groups matched by this regular expression
    seed: int = 0
    cache: str = "auto"
    skip_bad: bool = False
    max_size: int = 0  # shrink images whose longer side exceeds this (segment, instance)
    channels: int = 0
    high: float | None = None  # the model's pixel_max (16-bit images); None: probed from the data
    trained: Mapping[str, Any] | None = field(default=None, hash=False)  # the model's saved SplitPlan
    decode: bool = False  # decode every image now, even when streaming (`cnnkit data check`)
    whole_classes: bool = False  # hold out whole classes, not images of each (recognition: unseen identities)

    def __post_init__(self) -> None:
        if self.split is not None and self.split not in EVAL_SPLITS:
            raise CnnkitError(f"--split {self.split}: choose one of {', '.join(EVAL_SPLITS)}")

    @property
    def training(self) -> bool:
        """True when loading for training (train, val and test), False when scoring one split."""
        return self.split is None

    def fraction(self, default: float) -> float:
        """The fraction held out for validation: ``--val-split``, else the task's ``default``."""
        return self.val_split or default

    @classmethod
    def from_config(cls, cfg: Any, meta: ModelMeta | None = None, split: str | None = None,
                    **changes: Any) -> DataRequest:
        """The request of a run's ``cfg`` (a ``TrainConfig``); ``meta``: the model's card when evaluating
        or resuming (its side, size limit, channels, pixel range and split plan win over the config's);
        ``split``: None to train, else the split to score; ``changes``: fields set outright."""
        values: dict[str, Any] = dict(
            source=cfg.data, split=split, imgsz=cfg.imgsz, val_split=cfg.val_split, val_group=cfg.val_group,
            seed=cfg.seed, cache=cfg.cache, skip_bad=cfg.skip_bad,
            # max_size: an option of the tasks that shrink images (cfg.options, their TrainOptions); others take 0
            max_size=getattr(cfg.options, "max_size", 0))
        if meta is not None:
            values.update(imgsz=meta.imgsz, max_size=meta.max_size, channels=meta.in_chans, high=meta.pixel_max,
                          trained=meta.split_plan)
        return cls(**{**values, **changes})

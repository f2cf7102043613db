"""Semantic segmentation: a class per pixel (the task's registration; torch-free).

``task.py`` trains and predicts with torch (``infer.py``: whole images or a sliding window; ``losses.py``),
``view.py`` and ``draw.py`` turn predictions into records, overlays and masks, ``graph.py`` is what
``cnnkit export`` writes and ``runner.py`` runs it without torch.
"""

from __future__ import annotations

from dataclasses import dataclass

from cnnkit.errors import CnnkitError
from cnnkit.options import option
from cnnkit.tasks.common import (
    MIN_TILE,
    augment_option,
    check_tiling,
    freeze_epochs_option,
    max_size_option,
    tta_option,
)
from cnnkit.tasks.registry import DemoSpec, TaskSpec


@dataclass(frozen=True)
class SegmentOptions:
    tta: bool = option(False, "average over a horizontal flip", runtimes=("pytorch",), evaluate=True)
    mode: str = option("auto", "whole image, sliding window, or auto (slide above 4 training crops)",
                       choices=("auto", "whole", "slide"), runtimes=("pytorch",))
    tile: int = option(0, f"tile side, 0 or at least {MIN_TILE}; 0: the training crop", unit="px", low=0,
                       runtimes=("pytorch",))
    overlap: float = option(0.25, "tile overlap", unit="fraction of a tile", low=0.0, high=0.9,
                            runtimes=("pytorch",))
    probs: bool = option(False, "also return class probabilities (predict: <stem>_probs.npy)", runtimes=("pytorch",))
    tile_batch: int = option(4, "tiles through the model at a time (memory grows with it)", unit="tiles", low=1,
                             runtimes=("pytorch",))

    def __post_init__(self) -> None:
        check_tiling(self.tile, self.overlap)  # a tile of a few pixels: millions of tiles, a seeming hang
        if self.mode == "whole" and self.tile:
            raise CnnkitError(f"--tile {self.tile}: --mode whole predicts each image in one piece; drop --tile, or "
                              "use --mode slide (or auto) to tile")


@dataclass(frozen=True)
class SegmentTrainOptions:
    augment: str = augment_option()
    loss: str = option("ce", "training loss", choices=("", "ce", "dice", "focal", "ce+dice"))  # "": ce (old recipes)
    class_weights: str = option("none", "loss weight per class: none, median (SegNet's median frequency), inverse "
                                        "(frequency), or numbers w0,w1,... (from the training split)")
    ignore_index: int = option(255, "mask value that counts in neither loss nor metrics (VOC 255, CamVid 11)",
                               unit="mask value", low=0, high=65535)
    binary: bool = option(False, "binary masks (0 background, >0 foreground) and a one-class sigmoid head")
    classes_file: str = option("", "CSV of index,name,r,g,b (default: classes.csv in the data folder)")
    max_size: int = max_size_option()
    tta: bool = tta_option()
    freeze_epochs: int = freeze_epochs_option()


# AdamW reached mIoU 0.40 in 8 short epochs where SGD at 0.1 stayed at 0.26
DEMO = DemoSpec(recipe={"data": "shapes:1500", "model": "unet_basic", "max_size": 32, "epochs": 7, "batch": 16,
                        "optimizer": "adamw", "lr": 0.003, "weight_decay": 1e-4, "warmup_epochs": 0.5,
                        "augment": "light", "loss": "ce+dice", "channels_last": True,
                        "model_args": {"widths": [16, 32, 48, 64, 96], "decoder_channels": [96, 64, 32, 16, 16]}},
                # new scenes at twice the 32 px the model trained on
                about="background + {n} shape classes", shows="pixels", options={"tta": True}, size=64)

SPEC = TaskSpec(
    name="segment", summary="a class per pixel (image/mask folders, VOC, CamVid, Cityscapes-style)",
    task="cnnkit.tasks.segment.task:SegmentTask", view="cnnkit.tasks.segment.view:SegmentView",
    layouts="cnnkit.tasks.segment.layouts:LAYOUTS",
    runner="cnnkit.tasks.segment.runner:SegmentRunner", options=SegmentOptions,
    train_options=SegmentTrainOptions, defaults={"val_split": 0.2, "model": "unet_basic", "monitor": "miou"},
    demo=DEMO, model_kind="segmenter")

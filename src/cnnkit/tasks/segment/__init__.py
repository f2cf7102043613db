"""Semantic segmentation: a class per pixel (the task's registration; torch-free).

``task.py`` trains and predicts with torch (``infer.py``: whole images or a sliding window; ``losses.py``),
``view.py`` and ``draw.py`` turn predictions into records, overlays and masks, ``graph.py`` is what
``cnnkit export`` writes and ``runner.py`` runs it without torch.
"""

from __future__ import annotations

from dataclasses import dataclass

from cnnkit.errors import CnnkitError
from cnnkit.options import option
from cnnkit.tasks.common import MIN_TILE, check_tiling
from cnnkit.tasks.registry import TaskSpec


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


SPEC = TaskSpec(
    name="segment", summary="a class per pixel (image/mask folders, VOC, CamVid, Cityscapes-style)",
    task="cnnkit.tasks.segment.task:SegmentTask", view="cnnkit.tasks.segment.view:SegmentView",
    layouts="cnnkit.tasks.segment.layouts:LAYOUTS",
    runner="cnnkit.tasks.segment.runner:SegmentRunner", options=SegmentOptions,
    config=("loss", "class_weights", "ignore_index", "binary", "classes_file", "max_size", "tta",
            "freeze_epochs"),
    defaults={"val_split": 0.2, "loss": "ce", "model": "unet_basic", "monitor": "miou"},
    choices={"loss": ("", "ce", "dice", "focal", "ce+dice")}, model_kind="segmenter")

"""Instance segmentation (Mask R-CNN: a mask, box and class per object) and detection (Faster R-CNN:
boxes only): the tasks' registrations; torch-free.

``task.py`` trains and predicts with torch (``infer.py``: whole images or merged tiles), ``view.py``
and ``draw.py`` turn predictions into records, overlays, instance maps and COCO results, ``graph.py``
is what ``cnnkit export`` writes and ``runner.py`` (with ``paste.py``) runs it without torch.
"""

from __future__ import annotations

from dataclasses import dataclass

from cnnkit.options import option
from cnnkit.tasks.common import augment_option, check_tiling, freeze_epochs_option, max_size_option
from cnnkit.tasks.registry import DemoSpec, TaskSpec

DEFAULT_DETECTIONS = 300  # most objects a model returns per image (model_args: detections)
MIN_TILE = 64  # px: the feature pyramid's coarsest level has stride 64; a smaller tile pools to nothing
# px: the least longer side of a working image. The pyramid's deepest GroupNorm level has stride 32 (the encoder's
# total stride, every detector here) and the model pads images to multiples of 32: a longer side up to 32 leaves
# that level one pixel, one value per group, and torch's GroupNorm raises. Twice the stride leaves it two or more.
MIN_SIDE = 64


@dataclass(frozen=True)
class InstanceOptions:
    score_thresh: float = option(0.5, "lowest score kept", unit="probability", low=0.0, high=1.0)
    nms_thresh: float = option(0.5, "box IoU above which the lower-scored same-class detection is dropped",
                               unit="IoU", low=0.0, high=1.0, runtimes=("pytorch",))
    max_det: int = option(0, "most objects per image; 0: the model's limit (per tile for a tiled image)",
                          unit="objects", low=0, evaluate=True)
    tile: int = option(0, f"tile side, 0 or at least {MIN_TILE}; 0: twice the training crop, tiling only images "
                          "over four crops", unit="px", low=0, runtimes=("pytorch",))
    overlap: float = option(0.25, "tile overlap", unit="fraction of a tile", low=0.0, high=0.9, runtimes=("pytorch",))
    tile_batch: int = option(4, "tiles through the model at a time (memory grows with it)", unit="tiles", low=1,
                             runtimes=("pytorch",))

    def __post_init__(self) -> None:
        check_tiling(self.tile, self.overlap, MIN_TILE)


@dataclass(frozen=True)
class InstanceTrainOptions:
    augment: str = augment_option()
    max_size: int = max_size_option()
    shift_augment: bool = option(False, "also random colour inversion, grey conversion and strong colour jitter, "
                                        "for test images from other stains, microscopes or cameras")
    freeze_epochs: int = freeze_epochs_option()


def working_scale(height: int, width: int, max_size: int) -> float:
    """The factor from a ``height`` x ``width`` px image to the detector's working image: shrunk so that the
    longer side is at most ``max_size`` (0: no limit), grown so that it is at least ``MIN_SIDE``. Boxes and masks
    found at the working size go back to the image's own by this factor, whichever way it goes."""
    longer = max(height, width)
    factor = min(1.0, max_size / longer) if max_size else 1.0
    return max(factor, MIN_SIDE / longer)


def working_size(height: int, width: int, factor: float) -> tuple[int, int]:
    """``(h, w)`` px of the working image of a ``height`` x ``width`` image at ``factor``, at least 1 px a side."""
    return max(1, round(height * factor)), max(1, round(width * factor))


def _demo(masks: bool) -> DemoSpec:
    """Light heads (32 FPN channels, 100 proposals, 64 RoIs an image): 23 images/s on 2 cores; a three-minute
    model is unsure of itself: the new scenes show what it finds at score 0.2."""
    heads = {"fpn_channels": 32, "box_width": 128, "box_batch": 64, "rpn_pre_nms": 300, "rpn_post_nms": 100,
             "rpn_post_nms_test": 100, "anchor_sizes": [8, 16, 32, 64, 128], "detections": 30}
    recipe = {"data": "shapes:280", "model": "maskrcnn_resnet18" if masks else "fasterrcnn_resnet18", "imgsz": 96,
              "epochs": 4, "batch": 4, "lr": 0.02, "grad_clip": 10.0, "warmup_epochs": 0.5, "augment": "light",
              "model_args": {**heads, "mask_channels": 32} if masks else heads}
    return DemoSpec(recipe=recipe, about="every shape an object of {n} classes", shows="objects",
                    options={"score_thresh": 0.2}, size=96, default=masks)  # 96: data.instance_data.SHAPES_SIZE


def _spec(name: str, summary: str, masks: bool) -> TaskSpec:
    """instance and detect: the same parts; detect has no masks and picks best.pt by box AP."""
    parts = "cnnkit.tasks.instance"
    return TaskSpec(name=name, summary=summary, task=f"{parts}.task:InstanceTask", view=f"{parts}.view:InstanceView",
                    runner=f"{parts}.runner:InstanceRunner",
                    layouts=f"{parts}.layouts:{'LAYOUTS' if masks else 'DETECT_LAYOUTS'}",
                    options=InstanceOptions, train_options=InstanceTrainOptions, demo=_demo(masks),
                    # batches of 4 at 0.01, as the DSB2018 recipe: 64 images of 512 px took 14 GB in one step
                    defaults={"val_split": 0.1, "model": "maskrcnn_resnet18" if masks else "fasterrcnn_resnet18",
                              "monitor": "mask_ap" if masks else "box_ap", "batch": 4, "lr": 0.01},
                    args={"masks": masks}, model_kind="mask_detector" if masks else "box_detector")


SPEC = _spec("instance", "a mask, box and class per object (COCO, YOLO-seg, instance maps)", masks=True)
DETECT_SPEC = _spec("detect", "a box and class per object (COCO, YOLO, instance maps)", masks=False)

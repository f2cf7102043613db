"""Interactive segmentation by clicks: a model that takes an image, the user's clicks (positive on the object,
negative off it) and its previous mask, and returns the clicked object's mask (the task's registration;
torch-free).

``cnnkit train click --data D --model <segmenter>`` trains any registered segmenter as RITM does (Sofiiuk,
Petrov and Konushin, 2021; ``cnnkit.models.click``) on segmentation data (each connected region of a class
that is not background is an object) or instance data (each object). Training items (``data.py``,
``sampling.py``): one object of an image in a crop, 1-3 positive and 0-2 negative random clicks, then up to
``--iterations`` clicks that the clicker of ``cnnkit.metrics.clicks`` places on the model's own prediction,
that prediction fed back as the previous mask (``infer.py``). ``cnnkit val`` scores the NoC protocol
(``cnnkit.metrics.clicks.NocMetrics``): NoC@85, NoC@90 and IoU after 1, 3 and 5 clicks, at each image's own
size. Predictions come from clicks, never from an image alone: ``task.predict_clicks`` (``cnnkit annotate``,
``cnnkit.click_mask``).
"""

from __future__ import annotations

from dataclasses import dataclass

from cnnkit.options import NoOptions, option
from cnnkit.tasks.common import augment_option, freeze_epochs_option
from cnnkit.tasks.registry import DemoSpec, TaskSpec

DEFAULT_MAX_SIZE = 512  # px: CamVid's 480 x 360 runs whole; DSB2018's 1388 px images are shrunk to it
VAL_OBJECTS = 400  # objects scored after each training epoch (spread over the validation images)


@dataclass(frozen=True)
class ClickTrainOptions:
    augment: str = augment_option()
    max_size: int = option(DEFAULT_MAX_SIZE, "working size: images whose longer side exceeds this are shrunk before "
                                             "training and prediction (clicks and masks are mapped back to each "
                                             "image's own size); 0 keeps full resolution", unit="px", low=0)
    min_area: int = option(32, "objects smaller than this at the working size are never targets (they stay what "
                               "they are: not the clicked object)", unit="px", low=1)
    iterations: int = option(3, "most clicks a training step adds from the model's own prediction (drawn 0..N per "
                                "batch, RITM's iterative training)", unit="clicks", low=0, high=20)
    click_radius: float = option(5.0, "radius of the disk that encodes a click, at the working size", unit="px",
                                 low=1.0, high=50.0)
    val_objects: int = option(VAL_OBJECTS, "objects the NoC protocol scores after each epoch, spread over the "
                                           "validation images; 0 = all (`cnnkit val` scores all)", unit="objects",
                              low=0)
    ignore_index: int = option(255, "segmentation data: mask value that is no object and counts for no IoU",
                               unit="mask value", low=0, high=65535)
    classes_file: str = option("", "segmentation data: CSV of index,name,r,g,b (default: classes.csv in the data "
                                   "folder); classes named background, void or unlabelled are never objects")
    freeze_epochs: int = freeze_epochs_option()


# 8 min on 2 CPU cores busy with another training (NoC@85 11.4, IoU 0.43 after 1 click); not in a plain
# `cnnkit demo` (`cnnkit demo --task click`)
DEMO = DemoSpec(recipe={"data": "shapes:600", "model": "unet_basic", "imgsz": 64, "epochs": 6, "batch": 16, "lr": 0.003,
                        "val_objects": 40, "min_area": 16,
                        "model_args": {"widths": [16, 24, 32, 48, 64], "decoder_channels": [64, 48, 32, 16, 16]}},
                about="each shape of {n} kinds an object to click on", shows="clicks", default=False)

SPEC = TaskSpec(
    name="click", summary="interactive segmentation: the object under the user's clicks (RITM), for annotation",
    task="cnnkit.tasks.click.task:ClickTask", view="cnnkit.tasks.click.view:ClickView",
    layouts="cnnkit.tasks.click.layouts:LAYOUTS", options=NoOptions, train_options=ClickTrainOptions,
    # RITM's Adam at 5e-4; crops of one object each, so batches are small
    defaults={"model": "unet_basic", "monitor": "noc85", "val_split": 0.1, "batch": 8, "optimizer": "adamw",
              "lr": 5e-4, "weight_decay": 1e-4, "schedule": "cosine", "warmup_epochs": 0.5},
    args={"any_model": True},  # --model names the segmenter the click model wraps (its kind is checked)
    model_kind="clicker", demo=DEMO,
    next_steps=("cnnkit val --weights {weights} --data {data}",
                "cnnkit annotate --weights {weights} IMAGES_FOLDER"))

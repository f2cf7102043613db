"""Image classification: one label per image (the task's registration; torch-free).

``task.py`` trains and predicts with torch, ``view.py`` turns predictions into records and pictures,
``graph.py`` is what ``cnnkit export`` writes and ``runner.py`` runs it without torch.
"""

from __future__ import annotations

from dataclasses import dataclass

from cnnkit.options import option
from cnnkit.tasks.common import augment_option, freeze_epochs_option, tta_option
from cnnkit.tasks.registry import DemoSpec, TaskSpec


@dataclass(frozen=True)
class ClassifyOptions:
    topk: int = option(5, "classes reported per image", unit="classes", low=1)
    tta: bool = option(False, "average over a horizontal flip", runtimes=("pytorch",), evaluate=True)


@dataclass(frozen=True)
class ClassifyTrainOptions:
    augment: str = augment_option()
    # "" was the task's own loss (cross-entropy) before each task declared its options: old recipes still read
    loss: str = option("ce", "training loss: cross-entropy", choices=("", "ce"))
    label_smoothing: float = option(0.0, "cross-entropy target smoothing", unit="probability mass", low=0.0,
                                    below=1.0)
    tta: bool = tta_option()
    freeze_epochs: int = freeze_epochs_option()


# sized for the whole demo to take about 3 minutes on 2 CPU cores (each stage's time in benchmarks/RESULTS.md)
DEMO = DemoSpec(recipe={"data": "shapes:1500", "model": "fastnet_small", "imgsz": 32, "epochs": 5, "batch": 128,
                        "lr": 0.2, "warmup_epochs": 0.5, "label_smoothing": 0.1, "augment": "light",
                        "channels_last": True},
                about="{n} shape classes", shows="labels", options={"topk": 3})

SPEC = TaskSpec(
    name="classify", summary="one label per image (folders of classes, CSV, IDX)",
    task="cnnkit.tasks.classify.task:ClassifyTask", view="cnnkit.tasks.classify.view:ClassifyView",
    layouts="cnnkit.tasks.classify.layouts:LAYOUTS",
    runner="cnnkit.tasks.classify.runner:ClassifyRunner", options=ClassifyOptions,
    train_options=ClassifyTrainOptions, defaults={"val_split": 0.2, "monitor": "top1"}, demo=DEMO,
    model_kind="classifier")

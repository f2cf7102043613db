"""Image classification: one label per image (the task's registration; torch-free).

``task.py`` trains and predicts with torch, ``view.py`` turns predictions into records and pictures,
``graph.py`` is what ``cnnkit export`` writes and ``runner.py`` runs it without torch.
"""

from __future__ import annotations

from dataclasses import dataclass

from cnnkit.options import option
from cnnkit.tasks.registry import TaskSpec


@dataclass(frozen=True)
class ClassifyOptions:
    topk: int = option(5, "classes reported per image", unit="classes", low=1)
    tta: bool = option(False, "average over a horizontal flip", runtimes=("pytorch",), evaluate=True)


SPEC = TaskSpec(
    name="classify", summary="one label per image (folders of classes, CSV, IDX)",
    task="cnnkit.tasks.classify.task:ClassifyTask", view="cnnkit.tasks.classify.view:ClassifyView",
    layouts="cnnkit.tasks.classify.layouts:LAYOUTS",
    runner="cnnkit.tasks.classify.runner:ClassifyRunner", options=ClassifyOptions,
    config=("loss", "label_smoothing", "tta", "freeze_epochs"),
    defaults={"val_split": 0.2, "loss": "ce", "monitor": "top1"},
    choices={"loss": ("", "ce")}, model_kind="classifier")

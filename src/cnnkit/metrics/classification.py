"""Classification metrics on torchmetrics (which reduces over DDP ranks): top-1/top-5 accuracy,
per-class precision, recall and F1, and the confusion matrix (CSV and PNG)."""

from __future__ import annotations

from pathlib import Path
from typing import cast

import torch
from torchmetrics import MetricCollection
from torchmetrics.classification import (
    MulticlassAccuracy,
    MulticlassConfusionMatrix,
    MulticlassF1Score,
    MulticlassPrecision,
    MulticlassRecall,
)

from cnnkit.log import LOGGER
from cnnkit.metrics.plots import percent, write_reports


class ClassificationMetrics:
    """Streams logits ``(N, C)`` and labels ``(N,)``; ``compute()`` gives scalars in 0..1."""

    def __init__(self, classes: list[str], device: torch.device | str = "cpu"):
        self.classes = classes
        c = len(classes)
        parts = {
            "top1": MulticlassAccuracy(c, top_k=1, average="micro"),
            "precision": MulticlassPrecision(c, average=None),
            "recall": MulticlassRecall(c, average=None),
            "f1": MulticlassF1Score(c, average=None),
            "confusion": MulticlassConfusionMatrix(c),
        }
        groups = [["top1"], ["precision", "recall", "f1"], ["confusion"]]
        if c > 5:
            parts["top5"] = MulticlassAccuracy(c, top_k=5, average="micro")
            groups.append(["top5"])
        # Groups named, not found: MetricCollection merges metrics whose states are equal after the
        # first update; a first batch that is all correct made top-5's equal to those of the top-1
        # based precision/recall/F1, and top-5 reported top-1 for good. Those three do share one state.
        self.collection = MetricCollection(parts, compute_groups=groups).to(device)
        self._last: dict[str, torch.Tensor] = {}
        self._said_absent: set[tuple[str, ...]] = set()

    def update(self, outputs: torch.Tensor, targets: torch.Tensor) -> None:
        self.collection.update(outputs.float(), targets)

    def reset(self) -> None:
        self.collection.reset()

    def compute(self) -> dict[str, float]:
        """top1, top5 (if > 5 classes) and macro precision/recall/F1; per-class values kept for save().

        A class with no images in the evaluated data has no recall (NaN), nor precision and F1 when it is
        never predicted either, and the macro means leave those out (scikit-learn's ``zero_division=nan``);
        scoring them 0 marked a perfect model down for a class the split does not hold. A prediction of
        such a class is still a wrong one: its precision is 0."""
        self._last = {k: v.detach().cpu() for k, v in self.collection.compute().items()}
        cm = self._last["confusion"]
        no_images = cm.sum(1) == 0
        never = no_images & (cm.sum(0) == 0)
        undefined = {"precision": never, "recall": no_images, "f1": never}  # F1 of a false positive alone is 0
        for k, mask in undefined.items():
            self._last[k] = torch.where(mask, torch.nan, self._last[k].double())
        self._say_absent([name for name, a in zip(self.classes, no_images.tolist()) if a])
        out = {"top1": float(self._last["top1"])}
        if "top5" in self._last:
            out["top5"] = float(self._last["top5"])
        for k in ("precision", "recall", "f1"):
            out[k] = float(self._last[k].nanmean())
        return out

    def _say_absent(self, names: list[str]) -> None:
        """One line for each set of absent classes (not one every epoch of a run)."""
        if names and tuple(names) not in self._said_absent:
            LOGGER.info("classes without images in the evaluated data, left out of the macro recall (and of "
                        "precision and F1 where never predicted): %s", ", ".join(names))
            self._said_absent.add(tuple(names))

    def per_class(self) -> list[dict[str, float | str | int]]:
        """One row per class; precision, recall and F1 are NaN (undefined) for an absent class."""
        last, support = self._last, self._last["confusion"].sum(1)
        return [{"class": name, "precision": float(last["precision"][i]), "recall": float(last["recall"][i]),
                 "f1": float(last["f1"][i]), "support": int(support[i])} for i, name in enumerate(self.classes)]

    def save(self, folder: Path) -> list[Path]:
        """Write per_class.csv, confusion_matrix.csv and confusion_matrix.png into ``folder``."""
        if not self._last:
            self.compute()
        return write_reports(folder, self.per_class(), self._last["confusion"].long(), self.classes)

    def table(self) -> str:
        """The per-class table as aligned text (percentages, as every table cnnkit prints; files keep fractions)."""
        rows = self.per_class()
        width = max(8, *(len(cast(str, r["class"])) for r in rows))
        lines = [f"{'class':<{width}} {'precision':>9} {'recall':>7} {'f1':>7} {'support':>8}"]
        lines += [f"{r['class']:<{width}} {percent(r['precision'], 9)} {percent(r['recall'], 7)} {percent(r['f1'], 7)} "
                  f"{r['support']:8d}" for r in rows]
        return "\n".join(lines)

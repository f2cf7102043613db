"""Segmentation metrics from one streamed confusion matrix (torchmetrics; reduced over DDP ranks):
mIoU, per-class IoU, Dice, pixel accuracy and mean class accuracy, with the ignore id honoured.

Memory is the ``C x C`` matrix, whatever the number or size of the images. As in MMSegmentation,
per-class values are undefined (NaN) for classes absent from both prediction and ground truth
(IoU, Dice) or from the ground truth (accuracy), and means skip them.
"""

from __future__ import annotations

from pathlib import Path
from typing import cast

import torch
import torch.nn.functional as F
from torchmetrics.classification import MulticlassConfusionMatrix

from cnnkit.data.masks import IGNORE
from cnnkit.metrics.plots import percent, write_reports


def logits_to_ids(logits: torch.Tensor) -> torch.Tensor:
    """``(N, C, H, W)`` logits -> ``(N, H, W)`` class ids; one channel is the binary (sigmoid) head."""
    if logits.shape[1] == 1:
        return (logits[:, 0] > 0).long()
    return logits.argmax(1)


def scores_from_confusion(cm: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per-class IoU, Dice and accuracy (recall) from ``cm[true, pred]`` pixel counts."""
    cm = cm.double()
    tp = cm.diag()
    support, predicted = cm.sum(1), cm.sum(0)
    union = support + predicted - tp
    nan = torch.tensor(float("nan"), dtype=torch.float64)
    return {
        "iou": torch.where(union > 0, tp / union.clamp_min(1), nan),
        "dice": torch.where(union > 0, 2 * tp / (support + predicted).clamp_min(1), nan),
        "acc": torch.where(support > 0, tp / support.clamp_min(1), nan),
        "pixel_acc": tp.sum() / cm.sum().clamp_min(1),
    }


class SegmentationMetrics:
    """Streams logits ``(N, C, H, W)`` and masks ``(N, H, W)`` (IGNORE = 255); ``compute()`` gives 0..1 values."""

    def __init__(self, classes: list[str], device: torch.device | str = "cpu"):
        self.classes = list(classes)
        self.confusion = MulticlassConfusionMatrix(len(classes), ignore_index=IGNORE, validate_args=False).to(device)
        self._last: dict[str, torch.Tensor] = {}

    def update(self, outputs: torch.Tensor, targets: torch.Tensor | dict[str, torch.Tensor]) -> None:
        """``targets``: masks at the outputs' size, or {"mask": full-size masks, "size" and "full_size": (N, 2)
        each image's (h, w) in the batch and its mask's}: each image's logits are then resized (bilinear)
        to its mask's full size."""
        if isinstance(targets, torch.Tensor):
            self.confusion.update(logits_to_ids(outputs.float()), targets)
            return
        sizes, full_sizes = targets["size"].tolist(), targets["full_size"].tolist()
        for logits, mask, (h, w), (full_h, full_w) in zip(outputs.float(), targets["mask"], sizes, full_sizes):
            resized = F.interpolate(logits[None, :, :h, :w], size=(full_h, full_w), mode="bilinear",
                                    align_corners=False)
            self.confusion.update(logits_to_ids(resized), mask[None, :full_h, :full_w])

    def reset(self) -> None:
        self.confusion.reset()
        self._last = {}

    def compute(self) -> dict[str, float]:
        """miou, dice (mean), pixel_acc, mean_acc; per-class values kept for ``save`` and ``table``."""
        cm = self.confusion.compute().detach().cpu()
        self._last = {"confusion": cm, **scores_from_confusion(cm)}
        return {"miou": float(self._last["iou"].nanmean()), "dice": float(self._last["dice"].nanmean()),
                "pixel_acc": float(self._last["pixel_acc"]), "mean_acc": float(self._last["acc"].nanmean())}

    def per_class(self) -> list[dict[str, float | str | int]]:
        last = self._last
        support = last["confusion"].sum(1)
        return [{"class": name, "iou": float(last["iou"][i]), "dice": float(last["dice"][i]),
                 "acc": float(last["acc"][i]), "pixels": int(support[i])} for i, name in enumerate(self.classes)]

    def save(self, folder: Path) -> list[Path]:
        """per_class.csv, confusion_matrix.csv (pixels) and confusion_matrix.png (row-normalised)."""
        if not self._last:
            self.compute()
        cm = self._last["confusion"].long()
        return write_reports(folder, self.per_class(), cm, self.classes, annotate="fraction")

    def table(self) -> str:
        """The per-class table as aligned text (percentages)."""
        rows = self.per_class()
        width = max(8, *(len(cast(str, r["class"])) for r in rows))
        lines = [f"{'class':<{width}} {'IoU':>6} {'Dice':>6} {'acc':>6} {'pixels':>12}"]
        lines += [f"{r['class']:<{width}} {percent(r['iou'], 6)} {percent(r['dice'], 6)} {percent(r['acc'], 6)} "
                  f"{r['pixels']:12d}" for r in rows]
        return "\n".join(lines)

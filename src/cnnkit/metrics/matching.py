"""Scores for segments without class names: match segments to classes, then score as semantic segmentation.

An unsupervised method gives segment ids, not classes. Each image's segments (or one data set's, when the
ids mean the same thing in every image) are matched to the true classes on their pixel overlap:

- one-to-one (the Hungarian method, maximising the matched pixels): at most one segment per class and one
  class per segment; a segment left over, or matched only to a class it does not overlap, maps to nothing
  and its pixels count as errors (a false negative for their true class, a false positive for none);
- many-to-one: each segment to its majority class, an upper bound (any over-segmentation scores well).

The matched prediction is accumulated into one class confusion over the data set and scored as in
MMSegmentation: IoU per class, undefined (NaN) for a class absent from both prediction and truth and left out
of the mean; pixel accuracy. numpy and scipy only.

Confusion matrices here are ``conf[pred, true]`` (rows are predictions), unlike ``metrics.segmentation``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.optimize import linear_sum_assignment


def confusion(pred: np.ndarray, truth: np.ndarray, n_pred: int, n_true: int,
              ignore_index: int | None = None) -> np.ndarray:
    """``(n_pred, n_true)`` int64 pixel counts ``conf[p, t]``; pixels whose truth is ``ignore_index`` are skipped."""
    pred, truth = np.asarray(pred).ravel(), np.asarray(truth).ravel()
    if pred.shape != truth.shape:
        raise ValueError(f"prediction and truth differ in size: {pred.size} vs {truth.size} pixels")
    if ignore_index is not None:
        keep = truth != ignore_index
        pred, truth = pred[keep], truth[keep]
    pred, truth = pred.astype(np.int64), truth.astype(np.int64)
    for name, values, n in (("prediction", pred, n_pred), ("truth", truth, n_true)):
        if values.size and (values.min() < 0 or values.max() >= n):
            raise ValueError(f"{name} values must lie in 0..{n - 1}, got {values.min()}..{values.max()}")
    counts = np.bincount(pred * n_true + truth, minlength=n_pred * n_true)
    return counts.reshape(n_pred, n_true).astype(np.int64)


def match_one_to_one(conf: np.ndarray) -> dict[int, int]:
    """Segment -> class by the Hungarian method on ``conf[segment, class]``, maximising the matched overlap.
    Segments left unmatched, and pairs with no overlap, are absent from the result."""
    conf = np.asarray(conf)
    rows, cols = linear_sum_assignment(conf, maximize=True)
    return {int(r): int(c) for r, c in zip(rows, cols) if conf[r, c] > 0}


def match_many_to_one(conf: np.ndarray) -> dict[int, int]:
    """Segment -> its majority class (ties: the lowest class index); segments with no pixels are absent."""
    conf = np.asarray(conf)
    best = conf.argmax(1)
    return {int(s): int(best[s]) for s in np.flatnonzero(conf.sum(1) > 0)}


def relabel_confusion(conf: np.ndarray, mapping: dict[int, int], n_classes: int) -> np.ndarray:
    """``conf[segment, class]`` -> ``(n_classes + 1, n_classes)`` class confusion under ``mapping``; the last
    row holds the pixels of unmatched segments (predicted as no class)."""
    conf = np.asarray(conf, dtype=np.int64)
    target = np.full(conf.shape[0], n_classes, dtype=np.int64)
    for segment, cls in mapping.items():
        target[segment] = cls
    out = np.zeros((n_classes + 1, n_classes), dtype=np.int64)
    np.add.at(out, target, conf)
    return out


def scores(conf: np.ndarray) -> dict:
    """mIoU, pixel accuracy and per-class IoU from a class confusion ``conf[pred, true]`` of shape ``(C, C)``,
    or ``(C + 1, C)`` whose last row counts pixels predicted as no class (always wrong).

    IoU is NaN for a class absent from both prediction and truth, and the mean leaves it out (MMSeg)."""
    conf = np.asarray(conf, dtype=np.float64)
    n = conf.shape[1]
    if conf.shape[0] not in (n, n + 1):
        raise ValueError(f"expected a (C, C) or (C + 1, C) confusion, got {conf.shape}")
    tp = np.diag(conf[:n])
    support, predicted = conf.sum(0), conf[:n].sum(1)
    union = support + predicted - tp
    iou = np.full(n, np.nan)
    np.divide(tp, union, out=iou, where=union > 0)
    total = conf.sum()
    return {"miou": float(np.mean(iou[union > 0])) if (union > 0).any() else float("nan"),
            "pixel_acc": float(tp.sum() / total) if total > 0 else float("nan"),
            "iou": iou}


def unsupervised_scores(preds: Sequence[np.ndarray], truths: Sequence[np.ndarray], n_classes: int,
                        ignore_index: int | None = None, per_image: bool = True) -> dict[str, dict]:
    """Segment maps ``preds`` (ids 0..) scored against class maps ``truths``.

    ``per_image``: each image's segments are matched on their own; otherwise one matching for the whole data
    set (for ids that mean the same thing in every image). Returns ``{"one_to_one": scores, "many_to_one":
    scores}``, each from one class confusion accumulated over all images, with ``"unmatched"``: the fraction
    of scored pixels whose segment maps to no class."""
    if len(preds) != len(truths):
        raise ValueError(f"{len(preds)} predictions for {len(truths)} truths")
    n_pred = max((int(np.max(p)) + 1 for p in preds if np.size(p)), default=1)
    per_segment = [confusion(p, t, int(np.max(p)) + 1 if per_image and np.size(p) else n_pred, n_classes,
                             ignore_index) for p, t in zip(preds, truths)]
    groups = per_segment if per_image else [sum(per_segment, np.zeros((n_pred, n_classes), np.int64))]
    out = {}
    for name, match in (("one_to_one", match_one_to_one), ("many_to_one", match_many_to_one)):
        total = np.zeros((n_classes + 1, n_classes), dtype=np.int64)
        for conf in groups:
            total += relabel_confusion(conf, match(conf), n_classes)
        result = scores(total)
        result["unmatched"] = float(total[n_classes].sum() / total.sum()) if total.sum() else float("nan")
        out[name] = result
    return out

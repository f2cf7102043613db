"""Segmentation metrics against scikit-learn, with ignored pixels, streamed over batches."""

import numpy as np
import pytest
import torch
from sklearn.metrics import confusion_matrix, f1_score, jaccard_score, recall_score

from cnnkit.data.masks import IGNORE
from cnnkit.metrics.segmentation import SegmentationMetrics


def random_batch(gen, n=3, classes=4, size=(9, 11)):
    logits = torch.randn(n, classes, *size, generator=gen)
    target = torch.randint(0, classes, (n, *size), generator=gen)
    target[torch.rand(n, *size, generator=gen) < 0.2] = IGNORE
    return logits, target


def test_against_sklearn_with_ignored_pixels_over_batches():
    gen = torch.Generator().manual_seed(0)
    metrics = SegmentationMetrics(["a", "b", "c", "d"])
    preds, truths = [], []
    for _ in range(4):
        logits, target = random_batch(gen)
        metrics.update(logits, target)
        keep = target != IGNORE
        preds.append(logits.argmax(1)[keep].numpy())
        truths.append(target[keep].numpy())
    y_pred, y_true = np.concatenate(preds), np.concatenate(truths)
    out = metrics.compute()
    labels = [0, 1, 2, 3]
    assert out["miou"] == pytest.approx(jaccard_score(y_true, y_pred, labels=labels, average="macro"))
    assert out["dice"] == pytest.approx(f1_score(y_true, y_pred, labels=labels, average="macro"))
    assert out["mean_acc"] == pytest.approx(recall_score(y_true, y_pred, labels=labels, average="macro"))
    assert out["pixel_acc"] == pytest.approx((y_true == y_pred).mean())
    rows = metrics.per_class()
    assert [r["iou"] for r in rows] == pytest.approx(jaccard_score(y_true, y_pred, labels=labels, average=None))
    assert np.array_equal(metrics._last["confusion"].numpy(), confusion_matrix(y_true, y_pred, labels=labels))


def test_a_strong_models_outputs_whose_first_batch_is_perfect():
    """Metrics must not settle on their first batch (top-5 once merged with top-1 that way)."""
    gen = torch.Generator().manual_seed(1)
    metrics = SegmentationMetrics(["a", "b", "c", "d"])
    preds, truths = [], []
    for b in range(5):
        target = torch.randint(0, 4, (2, 16, 16), generator=gen)
        wrong = torch.rand(2, 16, 16, generator=gen) < (0.0 if b == 0 else 0.05)  # 95% right after batch 0
        pred = torch.where(wrong, (target + 1) % 4, target)
        logits = torch.nn.functional.one_hot(pred, 4).permute(0, 3, 1, 2).float() * 5
        metrics.update(logits, target)
        preds.append(pred.ravel().numpy())
        truths.append(target.ravel().numpy())
    y_pred, y_true = np.concatenate(preds), np.concatenate(truths)
    out = metrics.compute()
    assert 0.85 < out["miou"] < 1.0
    assert out["miou"] == pytest.approx(jaccard_score(y_true, y_pred, average="macro"))
    assert out["pixel_acc"] == pytest.approx((y_true == y_pred).mean())


def test_absent_classes_are_skipped_in_means_and_reset_clears(tmp_path):
    metrics = SegmentationMetrics(["a", "b", "c"])
    logits = torch.zeros(1, 3, 2, 2)
    logits[:, 0] = 1  # predicts class 0 everywhere
    metrics.update(logits, torch.tensor([[[0, 0], [1, IGNORE]]]))
    out = metrics.compute()
    # class 0: IoU 2/3; class 1: IoU 0; class 2: absent from both -> left out of the mean
    assert out["miou"] == pytest.approx((2 / 3 + 0) / 2)
    assert np.isnan(metrics.per_class()[2]["iou"])
    metrics.save(tmp_path)  # undefined is an empty cell, not "nan"
    assert (tmp_path / "per_class.csv").read_text().splitlines()[3] == "c,,,,0"
    assert "nan" not in metrics.table()
    metrics.reset()
    metrics.update(logits, torch.zeros(1, 2, 2, dtype=torch.long))
    assert metrics.compute()["miou"] == pytest.approx(1.0)


def test_binary_head_thresholds_logits_at_zero():
    metrics = SegmentationMetrics(["background", "foreground"])
    logits = torch.tensor([[[[-1.0, 2.0], [0.5, -3.0]]]])  # (1, 1, 2, 2)
    metrics.update(logits, torch.tensor([[[0, 1], [0, 0]]]))
    out = metrics.compute()
    assert out["pixel_acc"] == pytest.approx(0.75)
    assert metrics.per_class()[1]["iou"] == pytest.approx(0.5)


def test_reports_are_written(tmp_path):
    metrics = SegmentationMetrics(["a", "b"])
    metrics.update(torch.randn(2, 2, 5, 5), torch.randint(0, 2, (2, 5, 5)))
    metrics.compute()
    names = sorted(p.name for p in metrics.save(tmp_path))
    assert names == ["confusion_matrix.csv", "confusion_matrix.png", "per_class.csv"]
    assert "IoU" in metrics.table().splitlines()[0]

"""COCOMetrics against pycocotools run from JSON files, as users run it, on a known case."""

import contextlib
import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from pycocotools import mask as mask_util
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from cnnkit.metrics.coco import STAT_NAMES, COCOMetrics, paste_masks

H, W = 40, 60


def box_mask(x0, y0, x1, y1):
    m = np.zeros((H, W), np.uint8)
    m[y0:y1, x0:x1] = 1
    return m


def case():
    """Two images; ground truth boxes with box-shaped masks; detections shifted, missed or wrong."""
    gts = [[((2, 2, 12, 12), 1), ((20, 5, 40, 30), 2)], [((5, 5, 25, 25), 1), ((30, 10, 34, 14), 1)]]
    dets = [[((3, 2, 12, 12), 1, 0.9), ((20, 6, 40, 30), 2, 0.8), ((45, 20, 55, 35), 1, 0.3)],
            [((5, 5, 24, 25), 1, 0.95), ((30, 10, 34, 14), 2, 0.6)]]
    return gts, dets


def as_tensors(gts, dets):
    targets, outputs = [], []
    for g, d in zip(gts, dets):
        targets.append({"boxes": torch.tensor([b for b, _ in g], dtype=torch.float32),
                        "labels": torch.tensor([c for _, c in g]),
                        "masks": torch.from_numpy(np.stack([box_mask(*b) for b, _ in g]))})
        boxes = torch.tensor([b for b, _, _ in d], dtype=torch.float32)
        # a 28x28 mask of ones pasted into each box reproduces the box-shaped mask
        outputs.append({"boxes": boxes, "labels": torch.tensor([c for _, c, _ in d]),
                        "scores": torch.tensor([s for _, _, s in d]), "masks": torch.ones(len(d), 1, 28, 28)})
    return outputs, targets


def reference(tmp_path: Path, gts, dets, kind: str) -> list[float]:
    images, anns, results = [], [], []
    for i, (g, d) in enumerate(zip(gts, dets), 1):
        images.append({"id": i, "width": W, "height": H, "file_name": f"{i}.png"})
        for b, c in g:
            rle = mask_util.encode(np.asfortranarray(box_mask(*b)))
            rle["counts"] = rle["counts"].decode()
            anns.append({"id": len(anns) + 1, "image_id": i, "category_id": c, "iscrowd": 0,
                         "bbox": [b[0], b[1], b[2] - b[0], b[3] - b[1]], "segmentation": rle,
                         "area": float((b[2] - b[0]) * (b[3] - b[1]))})
        # the detections' masks as the model's 28x28 outputs paste them (torchvision's paste)
        pasted = paste_masks(torch.ones(len(d), 1, 28, 28), torch.tensor([b for b, _, _ in d], dtype=torch.float32),
                             (H, W))
        for (b, c, s), mask in zip(d, pasted):
            rle = mask_util.encode(np.asfortranarray(mask.astype(np.uint8)))
            rle["counts"] = rle["counts"].decode()
            results.append({"image_id": i, "category_id": c, "score": s, "segmentation": rle,
                            "bbox": [b[0], b[1], b[2] - b[0], b[3] - b[1]]})
    (tmp_path / "gt.json").write_text(json.dumps({"images": images, "annotations": anns,
                                                  "categories": [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}]}))
    (tmp_path / "dt.json").write_text(json.dumps(results))
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(tmp_path / "gt.json"))
        ev = COCOeval(gt, gt.loadRes(str(tmp_path / "dt.json")), kind)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return [max(0.0, float(v)) for v in ev.stats[:6]]


@pytest.mark.parametrize("kind, prefix", [("bbox", "box"), ("segm", "mask")])
def test_matches_pycocotools_on_a_known_case(tmp_path: Path, kind: str, prefix: str):
    gts, dets = case()
    metrics = COCOMetrics(["a", "b"], masks=True, max_dets=100)
    outputs, targets = as_tensors(gts, dets)
    metrics.update(outputs[:1], targets[:1])
    metrics.update(outputs[1:], targets[1:])
    ours = metrics.compute()
    expected = reference(tmp_path, gts, dets, kind)
    for name, value in zip(STAT_NAMES, expected):
        assert ours[f"{prefix}_{name}"] == pytest.approx(value, abs=1e-6), name
    assert 0.3 < ours[f"{prefix}_ap50"] < 1.0  # one miss, one wrong class: neither perfect nor zero


def test_perfect_detections_score_one_and_reports_are_written(tmp_path: Path):
    gts, _ = case()
    perfect = [[(b, c, 0.9) for b, c in g] for g in gts]
    metrics = COCOMetrics(["a", "b"], masks=True)
    metrics.update(*as_tensors(gts, perfect))
    results = metrics.compute()
    assert results["box_ap"] == pytest.approx(1.0) and results["box_ap_small"] == pytest.approx(1.0)
    assert results["mask_ap50"] > 0.8  # a 4 px object pasted from 28x28 blurs at its edges
    files = metrics.save(tmp_path)
    assert (tmp_path / "mask_pr_curve.png").stat().st_size > 1000 and len(files) == 5
    assert "a" in metrics.table() and (tmp_path / "box_ap_per_class.csv").read_text().count("\n") == 3


def test_no_detections_give_zero_not_an_error():
    gts, _ = case()
    metrics = COCOMetrics(["a", "b"], masks=False)
    outputs, targets = as_tensors(gts, [[((0, 0, 1, 1), 1, 0.1)]] * 2)
    outputs = [{k: v[:0] for k, v in o.items()} for o in outputs]
    metrics.update(outputs, targets)
    assert metrics.compute()["box_ap"] == 0.0


def test_ap_is_reported_when_the_detection_limit_exceeds_100():
    """Regression: COCOeval.summarize() takes AP at maxDets 100 and found nothing at [1, 10, 400]."""
    gts, _ = case()
    perfect = [[(b, c, 0.9) for b, c in g] for g in gts]
    metrics = COCOMetrics(["a", "b"], masks=False, max_dets=400)
    metrics.update(*as_tensors(gts, perfect))
    results = metrics.compute()
    assert results["box_ap"] == pytest.approx(1.0) and results["box_ap50"] == pytest.approx(1.0)


@pytest.mark.parametrize("masks", [False, True])
def test_crowd_ground_truth_is_ignored(masks: bool):
    """A crowd region (iscrowd 1) is neither missed when nothing finds it nor a false positive's reason:
    a detection inside it is ignored, as pycocotools does with crowd ground truth."""
    gts = [[((2, 2, 12, 12), 1), ((20, 5, 56, 38), 1)]]
    dets = [[((2, 2, 12, 12), 1, 0.8), ((24, 8, 34, 18), 1, 0.95)]]  # the object, and a part of the crowd
    outputs, targets = as_tensors(gts, dets)
    targets[0]["iscrowd"] = torch.tensor([0, 1])
    metrics = COCOMetrics(["a", "b"], masks=masks)
    metrics.update(outputs, targets)
    assert metrics.compute()["box_ap"] == pytest.approx(1.0)
    del targets[0]["iscrowd"]  # the same region as an object: missed, and the part found a false positive
    metrics.reset()
    metrics.update(outputs, targets)
    assert metrics.compute()["box_ap"] < 0.6


def test_a_class_without_ground_truth_is_undefined_not_minus_one(tmp_path):
    """Regression: box_ap_per_class.csv wrote 'bird,-1.0,-1.0' and the table '-100.00' for a class with no
    ground truth."""
    metrics = COCOMetrics(["a", "b"], masks=False, max_dets=100)
    outputs, targets = as_tensors([[((2, 2, 20, 20), 1)]], [[((2, 2, 20, 20), 1, 0.9)]])
    metrics.update(outputs, targets)
    metrics.compute()
    metrics.save(tmp_path)
    rows = (tmp_path / "box_ap_per_class.csv").read_text().splitlines()
    assert "b,," in rows and "-1" not in "".join(rows)
    assert "-100" not in metrics.table()

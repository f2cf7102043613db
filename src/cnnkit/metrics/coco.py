"""COCO detection metrics, computed by pycocotools' COCOeval (not by hand).

``COCOMetrics`` collects ground truth and detections image by image as RLE, then runs COCOeval for
boxes and (for the instance task) masks: AP (IoU 0.50:0.95), AP50, AP75, AP for small, medium and
large objects, AP per class, and the precision-recall curves. COCO counts at most 100 detections
per image; images here may hold hundreds of objects (nuclei), so the last ``maxDets`` is the
model's detection limit when that is larger (stated in the reports).
"""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import numpy as np
import torch
from pycocotools import mask as mask_util
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval
from torchvision.models.detection.roi_heads import expand_boxes, expand_masks, paste_mask_in_image

from cnnkit import distributed as dist_utils
from cnnkit.data.rle import encode
from cnnkit.files import atomic_write_bytes, atomic_write_csv, json_bytes
from cnnkit.metrics.plots import percent

STAT_NAMES = ("ap", "ap50", "ap75", "ap_small", "ap_medium", "ap_large")
MASK_THRESHOLD = 0.5  # probability above which a mask pixel belongs to the object


def paste_local(masks: torch.Tensor, boxes: torch.Tensor, size: tuple[int, int], threshold: float = 0.5):
    """Yield ``(mask (h, w) bool, top, left)`` per object: its ``(1, M, M)`` probabilities pasted into
    its box as torchvision pastes them (1 px padding, bilinear), clipped to the image ``size``."""
    if len(masks) == 0:
        return
    masks, scale = expand_masks(masks.float(), padding=1)
    boxes = expand_boxes(boxes.float(), scale).to(torch.int64)
    height, width = size
    for m, (x0, y0, x1, y1) in zip(masks, boxes.tolist()):
        local = paste_mask_in_image(m[0], torch.tensor([0, 0, x1 - x0, y1 - y0]), y1 - y0 + 1, x1 - x0 + 1)
        top, left = max(y0, 0), max(x0, 0)
        local = local[top - y0:min(y1 + 1, height) - y0, left - x0:min(x1 + 1, width) - x0]
        yield (local > threshold).cpu().numpy(), top, left


def paste_masks(masks: torch.Tensor, boxes: torch.Tensor, size: tuple[int, int]):
    """Yield each object's (H, W) bool mask, one object at a time so memory stays at one image."""
    for local, top, left in paste_local(masks, boxes, size, MASK_THRESHOLD):
        full = np.zeros(size, bool)
        full[top:top + local.shape[0], left:left + local.shape[1]] = local
        yield full


def xywh(boxes: torch.Tensor) -> list[list[float]]:
    b = boxes.detach().float().cpu()
    return torch.stack([b[:, 0], b[:, 1], b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]], 1).tolist() if len(b) else []


def summary(ev: COCOeval) -> list[float]:
    """AP, AP50, AP75, AP small/medium/large from COCOeval's accumulated precision, as its summarize()
    computes them, but all at the last ``maxDets`` (summarize() takes AP at a fixed 100, and finds
    nothing when the limit differs); -1 where there is no ground truth."""
    precision = ev.eval["precision"][..., -1]  # (IoU, recall, class, area) at the largest maxDets
    ious = np.asarray(ev.params.iouThrs)

    def mean(values: np.ndarray) -> float:
        values = values[values > -1]
        return float(values.mean()) if values.size else -1.0

    return [mean(precision[..., 0]), mean(precision[np.isclose(ious, 0.5)][..., 0]),
            mean(precision[np.isclose(ious, 0.75)][..., 0]),
            *(mean(precision[..., area]) for area in (1, 2, 3))]  # area ranges: all, small, medium, large


class COCOMetrics:
    """Streams (detections, targets) per batch; ``compute()`` runs COCOeval over everything seen.

    ``outputs``: per image ``boxes`` (N, 4) xyxy, ``labels`` (N,) 1-based, ``scores`` (N,) and, with
    masks, ``masks`` (N, 1, M, M) probabilities in box coordinates. ``targets``: ``boxes``,
    ``labels``, ``iscrowd`` and ``masks`` (N, H, W) at the image's size.
    """

    def __init__(self, classes: list[str], masks: bool = True, max_dets: int = 100):
        self.classes, self.masks = list(classes), masks
        self.limit = max_dets  # the most objects the model was asked for per image
        self.max_dets = max(100, max_dets)  # COCOeval's last maxDets; summarize() needs it to be at least 100
        self.reset()

    def reset(self) -> None:
        self.images: list[dict] = []
        self.gt: list[dict] = []
        self.dt: list[dict] = []
        self.evals: dict[str, COCOeval] = {}

    def update(self, outputs: list[dict[str, torch.Tensor]], targets: list[dict[str, torch.Tensor]]) -> None:
        for out, tgt in zip(outputs, targets):
            image_id = len(self.images) + 1
            size = tuple(tgt["masks"].shape[-2:]) if "masks" in tgt else tuple(tgt.get("size", (0, 0)))
            self.images.append({"id": image_id, "height": int(size[0]), "width": int(size[1])})
            self.gt += self.ground_truth(tgt, image_id)
            self.dt += self.detections(out, image_id, size)

    def ground_truth(self, tgt: dict[str, torch.Tensor], image_id: int) -> list[dict]:
        anns: list[dict] = []
        crowd = tgt.get("iscrowd", torch.zeros(len(tgt["labels"]))).tolist()
        gt_masks = tgt["masks"].cpu().numpy() if self.masks else None
        for k, (box, label) in enumerate(zip(xywh(tgt["boxes"]), tgt["labels"].tolist())):
            ann = {"id": len(self.gt) + len(anns) + 1, "image_id": image_id, "category_id": int(label),
                   "bbox": box, "iscrowd": int(crowd[k]), "area": box[2] * box[3]}
            if gt_masks is not None:
                ann["segmentation"] = encode(gt_masks[k])
                ann["area"] = float(mask_util.area(ann["segmentation"]))
            anns.append(ann)
        return anns

    def detections(self, out: dict[str, torch.Tensor], image_id: int, size: tuple[int, int]) -> list[dict]:
        dets = [{"image_id": image_id, "category_id": int(c), "bbox": b, "score": float(s)}
                for b, c, s in zip(xywh(out["boxes"]), out["labels"].tolist(), out["scores"].tolist())]
        if self.masks:
            for det, m in zip(dets, paste_masks(out["masks"], out["boxes"], size)):
                det["segmentation"] = encode(m)
        return dets

    def _gathered(self) -> tuple[list, list, list]:
        """All ranks' images and annotations, with ids made unique across ranks."""
        parts = dist_utils.gather_objects((self.images, self.gt, self.dt))
        images: list[dict] = []
        gt: list[dict] = []
        dt: list[dict] = []
        offset = 0
        for ims, g, d in parts:
            images += [{**im, "id": im["id"] + offset} for im in ims]
            gt += [{**a, "image_id": a["image_id"] + offset, "id": len(gt) + i + 1} for i, a in enumerate(g)]
            dt += [{**a, "image_id": a["image_id"] + offset} for a in d]
            offset += len(ims)
        return images, gt, dt

    def compute(self) -> dict[str, float]:
        images, gt, dt = self._gathered()
        coco_gt = COCO()
        coco_gt.dataset = {"images": images, "annotations": gt,
                           "categories": [{"id": i + 1, "name": n} for i, n in enumerate(self.classes)]}
        with contextlib.redirect_stdout(io.StringIO()):
            coco_gt.createIndex()
        results: dict[str, float] = {}
        self.evals = {}
        for kind in ("bbox", "segm") if self.masks else ("bbox",):
            prefix = "box" if kind == "bbox" else "mask"
            if not dt:
                results.update({f"{prefix}_{n}": 0.0 for n in STAT_NAMES})
                continue
            with contextlib.redirect_stdout(io.StringIO()):
                coco_dt = coco_gt.loadRes([{k: v for k, v in d.items() if kind == "segm" or k != "segmentation"}
                                           for d in dt])
                ev = COCOeval(coco_gt, coco_dt, kind)
                ev.params.maxDets = [1, 10, self.max_dets]
                ev.evaluate()
                ev.accumulate()
            self.evals[prefix] = ev
            results.update({f"{prefix}_{n}": max(0.0, v) for n, v in zip(STAT_NAMES, summary(ev))})
        return results

    def per_class(self, prefix: str) -> list[tuple[str, float, float]]:
        """(class, AP, AP50) from the last compute; NaN (undefined) for a class with no ground truth."""
        ev = self.evals.get(prefix)
        if ev is None:
            return []
        precision = ev.eval["precision"][:, :, :, 0, -1]  # (IoU, recall, class) at area all, max dets
        rows = []
        for k, name in enumerate(self.classes):
            p, p50 = precision[:, :, k], precision[0, :, k]
            rows.append((name, float(p[p > -1].mean()) if (p > -1).any() else float("nan"),
                         float(p50[p50 > -1].mean()) if (p50 > -1).any() else float("nan")))
        return rows

    def table(self) -> str:
        lines = []
        for prefix in self.evals:
            lines.append(f"{prefix} AP per class, % (IoU 0.50:0.95 / 0.50), up to {self.limit} detections per image:")
            lines += [f"  {name:<20} {percent(ap, 6)} {percent(ap50, 6)}" for name, ap, ap50 in self.per_class(prefix)]
        return "\n".join(lines)

    def save(self, folder: Path) -> list[Path]:
        """per-class AP CSV, COCO stats JSON and the precision-recall curve PNG."""
        from cnnkit.metrics.plots import plot_pr_curves

        folder.mkdir(parents=True, exist_ok=True)
        written = []
        for prefix, ev in self.evals.items():
            path = folder / f"{prefix}_ap_per_class.csv"
            atomic_write_csv(path, [{"class": n, "ap": round(float(a), 4), "ap50": round(float(b), 4)}
                                    for n, a, b in self.per_class(prefix)], fields=["class", "ap", "ap50"])
            written.append(path)
            written.append(plot_pr_curves(ev.eval["precision"], ev.params.recThrs, self.classes,
                                          folder / f"{prefix}_pr_curve.png", f"{prefix} precision-recall"))
        stats = {p: dict(zip(STAT_NAMES, summary(ev))) for p, ev in self.evals.items()}
        report = {**stats, "max_dets": self.max_dets, "detections_per_image": self.limit}
        atomic_write_bytes(folder / "coco_stats.json", json_bytes(report, indent=2))
        return [*written, folder / "coco_stats.json"]

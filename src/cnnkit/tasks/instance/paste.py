"""Detector outputs -> instances, in numpy: the ONNX runtime's twin of ``tasks.inst_infer``.

Masks are pasted as torchvision pastes them (``expand_masks`` with 1 px of padding, the box grown
to match, bilinear resize into the box, threshold 0.5), one object at a time.
"""

from __future__ import annotations

import cv2
import numpy as np

from cnnkit.data.rle import encode
from cnnkit.tasks.instance import working_size

THRESHOLD = 0.5  # mask probability above which a pixel belongs to the object


def paste_one(mask: np.ndarray, box: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``mask`` ``(M, M)`` probabilities in ``box`` (xyxy, pixels) -> ``(H, W)`` bool on an image of ``size``."""
    m = mask.shape[-1]
    padded = np.pad(mask.astype(np.float32), 1)
    scale = (m + 2) / m
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    half_w, half_h = (box[2] - box[0]) / 2 * scale, (box[3] - box[1]) / 2 * scale
    x0, y0, x1, y1 = (int(v) for v in np.trunc([cx - half_w, cy - half_h, cx + half_w, cy + half_h]))
    w, h = max(x1 - x0 + 1, 1), max(y1 - y0 + 1, 1)
    local = cv2.resize(padded, (w, h), interpolation=cv2.INTER_LINEAR) > THRESHOLD
    height, width = size
    out = np.zeros(size, bool)
    top, left = max(y0, 0), max(x0, 0)
    bottom, right = min(y0 + h, height), min(x0 + w, width)
    if bottom > top and right > left:
        out[top:bottom, left:right] = local[top - y0:bottom - y0, left - x0:right - x0]
    return out


def instances_from_outputs(outputs: list[np.ndarray], classes: list[str], size: tuple[int, int], factor: float,
                           score_thresh: float, max_det: int) -> list[dict]:
    """``[boxes (K, 4), labels (K,), scores (K,), masks (K, M, M)?]`` at the working scale ``factor`` ->
    JSON-able instances at the original ``size`` (H, W), best first: class, class_id, score, box, rle."""
    boxes, labels, scores = outputs[:3]
    masks = outputs[3] if len(outputs) > 3 else None
    order = [i for i in np.argsort(-scores, kind="stable") if scores[i] >= score_thresh][:max_det]
    work = working_size(*size, factor)
    bounds = [size[1], size[0], size[1], size[0]]  # boxes clipped to the image, as the PyTorch path clips them
    out = []
    for i in order:
        box = np.clip(boxes[i].astype(np.float64) / factor, 0, bounds)
        inst = {"class": classes[int(labels[i]) - 1], "class_id": int(labels[i]) - 1,
                "score": round(float(scores[i]), 4), "box": [round(float(v), 2) for v in box]}
        if masks is not None:
            mask = paste_one(masks[i], boxes[i], work)
            if work != size:  # back to the original size, as the PyTorch path does
                mask = cv2.resize(mask.astype(np.float32), (size[1], size[0]), interpolation=cv2.INTER_LINEAR) > 0.5
            inst["rle"] = encode(mask)
        out.append(inst)
    return out

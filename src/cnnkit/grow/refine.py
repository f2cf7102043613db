"""From the working resolution back to the image's: upsampled probabilities snapped to superpixels."""

from __future__ import annotations

import cv2
import numpy as np

REFINE_SIDE = 1024  # px: superpixels are computed at most this size (SLIC's time grows with the pixels)
SUPERPIXEL_AREA = 120  # px at the refinement size: SLIC's segments are about this big (a 11x11 square)


def upsample(probs: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``(K, h, w)`` -> ``(K, H, W)`` float32, bilinear."""
    height, width = size
    return np.stack([cv2.resize(p, (width, height), interpolation=cv2.INTER_LINEAR) for p in probs])


def superpixel_mean(probs: np.ndarray, image: np.ndarray) -> np.ndarray:
    """Average ``(K, H, W)`` probabilities within SLIC superpixels of ``image`` (``(H, W, 3)`` uint8), so
    that segment boundaries follow the image's edges rather than the low-resolution grid."""
    from skimage.segmentation import slic

    n_segments = max(16, image.shape[0] * image.shape[1] // SUPERPIXEL_AREA)
    regions = slic(image, n_segments=n_segments, compactness=10, start_label=0, channel_axis=-1)
    flat = regions.ravel()
    area = np.bincount(flat).astype(np.float32)
    means = np.stack([np.bincount(flat, weights=p.ravel()) / np.maximum(area, 1) for p in probs])
    return means[:, flat].reshape(probs.shape).astype(np.float32)


def to_full_size(probs: np.ndarray, image: np.ndarray, refine: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """``(K, h, w)`` probabilities at the working size -> ``(H, W)`` int64 labels and ``(H, W)`` float32
    confidence (the winning probability) at the image's size."""
    height, width = image.shape[:2]
    scale = min(1.0, REFINE_SIDE / max(height, width))
    work = (max(1, round(height * scale)), max(1, round(width * scale)))
    full = upsample(probs.astype(np.float32), work)
    if refine:
        small = image if scale == 1.0 else cv2.resize(image, (work[1], work[0]), interpolation=cv2.INTER_AREA)
        full = superpixel_mean(full, small)
    labels, confidence = full.argmax(axis=0), full.max(axis=0)
    if scale < 1.0:  # huge images: labels from the refinement size, nearest
        labels = cv2.resize(labels.astype(np.int32), (width, height), interpolation=cv2.INTER_NEAREST)
        confidence = cv2.resize(confidence, (width, height), interpolation=cv2.INTER_NEAREST)
    return labels.astype(np.int64), confidence.astype(np.float32)

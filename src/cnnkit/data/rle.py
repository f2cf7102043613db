"""COCO run-length encoding of binary masks (pycocotools), JSON-able, without torch."""

from __future__ import annotations

import numpy as np
from pycocotools import mask as mask_util


def encode(mask: np.ndarray) -> dict:
    """(H, W) uint8/bool -> compressed COCO RLE with a str ``counts`` (JSON-able)."""
    rle = mask_util.encode(np.asfortranarray(mask.astype(np.uint8)))
    rle["counts"] = rle["counts"].decode("ascii")
    return rle


def decode_rle(rle: dict) -> np.ndarray:
    """A JSON-able RLE (``counts`` str) -> (H, W) bool."""
    return mask_util.decode({"size": rle["size"], "counts": rle["counts"].encode("ascii")}).astype(bool)

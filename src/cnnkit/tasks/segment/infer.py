"""Segmentation inference: whole-image, or a sliding window with blended overlapping tiles.

The sliding window works band by band (one row of tiles at a time) and keeps blended logits only
for the rows not yet final, so memory is ``classes x 2 tiles x image width`` floats, not the whole
image's: a 10,000 x 10,000 image runs in bounded memory. Where one tile covers the image, the
result equals whole-image prediction.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from cnnkit.errors import CnnkitError
from cnnkit.metrics.segmentation import logits_to_ids
from cnnkit.tasks.common import check_tiling, tile_starts

MODES = ("auto", "whole", "slide")
RESIZE_LIMIT = 64_000_000  # floats of logits resized bilinearly back to the original size; beyond, nearest ids


@torch.no_grad()
def forward_logits(model: nn.Module, images: torch.Tensor, tta: bool = False) -> torch.Tensor:
    """``(N, C, H, W)`` uint8 -> float logits ``(N, K, H, W)``; ``tta`` averages with the mirror image."""
    out = model(images).float()
    if tta:
        out = (out + model(images.flip(-1)).float().flip(-1)) / 2
    return out


def activation(logits: torch.Tensor) -> torch.Tensor:
    """Class probabilities ``(K, H, W)``: softmax, or the foreground's sigmoid for one channel."""
    return torch.sigmoid(logits) if logits.shape[0] == 1 else logits.softmax(0)


def blend_window(h: int, w: int) -> torch.Tensor:
    """``(h, w)`` weights peaking at the tile centre, so that tile borders (less context) count less."""
    def ramp(n: int) -> torch.Tensor:
        pos = (torch.arange(n, dtype=torch.float32) + 0.5) / n
        return (1 - (2 * pos - 1).abs()).clamp_min(0.05)
    return ramp(h)[:, None] * ramp(w)[None, :]


def _grow(buffer: torch.Tensor | None, channels: int, rows: int, width: int) -> torch.Tensor:
    if buffer is None:
        return torch.zeros(channels, rows, width)
    if buffer.shape[1] >= rows:
        return buffer
    return torch.cat([buffer, torch.zeros(channels, rows - buffer.shape[1], width)], 1)


@torch.no_grad()
def predict_slide(model: nn.Module, image: torch.Tensor, tile: tuple[int, int], overlap: float = 0.25,
                  tta: bool = False, batch: int = 4, want_probs: bool = False
                  ) -> tuple[np.ndarray, np.ndarray | None]:
    """``image`` ``(C, H, W)`` uint8 -> class ids ``(H, W)`` uint8 and, if asked, probabilities ``(K, H, W)``
    float16, from tiles of ``tile`` pixels overlapping by ``overlap`` (fraction) with blended logits."""
    check_tiling(tile[0], overlap)
    device = next(model.parameters()).device
    _, h, w = image.shape
    th, tw = min(tile[0], h), min(tile[1], w)
    ys = tile_starts(h, th, max(1, int(th * (1 - overlap))))
    xs = tile_starts(w, tw, max(1, int(tw * (1 - overlap))))
    window = blend_window(th, tw)
    ids, probs = np.empty((h, w), np.uint8), None
    acc: Any = None
    weights: Any = None
    first = 0  # first row not yet final
    for j, y0 in enumerate(ys):
        tiles = [image[:, y0:y0 + th, x0:x0 + tw] for x0 in xs]
        for start in range(0, len(tiles), batch):
            logits = forward_logits(model, torch.stack(tiles[start:start + batch]).to(device), tta).cpu()
            if acc is None:
                probs = np.empty((logits.shape[1], h, w), np.float16) if want_probs else None
            acc = _grow(acc, logits.shape[1], y0 + th - first, w)
            weights = _grow(weights, 1, y0 + th - first, w)
            for x0, tile_logits in zip(xs[start:start + batch], logits):
                acc[:, y0 - first:y0 - first + th, x0:x0 + tw] += tile_logits * window
                weights[:, y0 - first:y0 - first + th, x0:x0 + tw] += window
        end = ys[j + 1] if j + 1 < len(ys) else h  # rows above the next band's start are final
        blended = acc[:, :end - first] / weights[:, :end - first]
        ids[first:end] = logits_to_ids(blended[None])[0].numpy()
        if probs is not None:
            probs[:, first:end] = activation(blended).numpy()
        acc, weights, first = acc[:, end - first:], weights[:, end - first:], end
    return ids, probs


@torch.no_grad()
def predict_whole(model: nn.Module, image: torch.Tensor, tta: bool = False, want_probs: bool = False,
                  size: tuple[int, int] | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """The whole ``(C, h, w)`` uint8 image in one forward pass; logits resized bilinearly to ``size``
    ``(H, W)`` when given (nearest on the ids for very large outputs, to bound memory)."""
    device = next(model.parameters()).device
    logits = forward_logits(model, image[None].to(device), tta)[0].cpu()
    if size is not None and tuple(size) != tuple(logits.shape[-2:]):
        if logits.shape[0] * size[0] * size[1] <= RESIZE_LIMIT:
            logits = F.interpolate(logits[None], size=size, mode="bilinear", align_corners=False)[0]
    ids = logits_to_ids(logits[None])[0].to(torch.uint8).numpy()
    return ids, activation(logits).half().numpy() if want_probs else None


def resize_ids(ids: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Class ids ``(h, w)`` -> ``size`` ``(H, W)`` by nearest neighbour."""
    if ids.shape == tuple(size):
        return ids
    return np.asarray(Image.fromarray(ids).resize((size[1], size[0]), Image.NEAREST))


def choose_mode(mode: str, size: tuple[int, int], tile: tuple[int, int]) -> str:
    """``auto``: a sliding window once the image holds more than 4 training crops, else whole."""
    if mode not in MODES:
        raise CnnkitError(f"--mode must be one of {', '.join(MODES)}, got '{mode}'")
    if mode != "auto":
        return mode
    return "slide" if size[0] * size[1] > 4 * tile[0] * tile[1] else "whole"

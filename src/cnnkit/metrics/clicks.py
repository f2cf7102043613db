"""Simulated clicks and the NoC protocol of interactive segmentation.

The clicker is the one that RITM's evaluation uses (Sofiiuk, Petrov and Konushin, "Reviving Iterative
Training with Mask Guidance for Interactive Segmentation", arXiv 2102.06583, 2021; their code,
``isegm/inference/clicker.py: Clicker._get_next_click``, as f-BRS and most later papers): the next click goes
on the error region that is widest, at its pixel farthest from that region's edge. The false negatives
(object missed) and false positives (background taken) are each padded by one pixel of zeros, so that the
image's border counts as an edge, and distance-transformed (exact Euclidean; RITM's ``cv2.distanceTransform``
with ``DIST_MASK_PRECISE`` is the same as ``scipy.ndimage.distance_transform_edt``); pixels already clicked
are left out; the click is positive when the false negatives' largest distance is larger than the false
positives' (a tie is negative), at the first such pixel in row-major order (``np.argwhere``'s order).

The protocol (RITM's ``isegm/inference/evaluation.py`` and ``utils.compute_noc_metric``): click, segment,
score IoU, until the IoU reaches 0.90 (and at least ``min_clicks`` were made) or 20 clicks; NoC@85 and
NoC@90 are the mean number of clicks needed to reach 0.85 and 0.90 IoU (20 when never reached), and
``fail85`` the fraction of objects that never reach 0.85. Pixels outside ``valid`` (an ignore label)
count neither in the IoU nor for the clicker, as in RITM's ``get_iou`` and ``not_ignore_mask``.

Masks are ``(H, W)`` arrays of bools (anything non-zero is the object). numpy and scipy; no torch.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy.ndimage import distance_transform_edt

from cnnkit.errors import CnnkitError

MAX_CLICKS = 20
CLICK_RADIUS = 5.0  # px: RITM's disk encoding of a click


@dataclass(frozen=True)
class Click:
    """One click: ``y`` the row and ``x`` the column in pixels of the image (and mask) it refers to;
    ``positive`` True on the object, False off it."""

    y: int
    x: int
    positive: bool


# clicks so far, the previous answer (None before the first) -> the object's mask, bool (H, W)
Segmenter = Callable[[list[Click], "np.ndarray | None"], np.ndarray]


def _bool_mask(mask: np.ndarray, name: str, shape: tuple[int, ...] | None = None) -> np.ndarray:
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise CnnkitError(f"{name}: expected an (H, W) mask, got shape {mask.shape}; pass one object's mask")
    if shape is not None and mask.shape != shape:
        raise CnnkitError(f"{name}: shape {mask.shape} differs from the ground truth's {shape}; "
                          "pass masks of the same image size")
    return mask.astype(bool, copy=False)


def _edge_distance(region: np.ndarray) -> np.ndarray:
    """Each pixel's distance to the nearest pixel outside ``region``, the image's border counting as outside."""
    padded = np.pad(region, 1, mode="constant", constant_values=False)
    return np.asarray(distance_transform_edt(padded))[1:-1, 1:-1]


def next_click(gt: np.ndarray, pred: np.ndarray, *, clicked: Sequence[Click] = (),
               valid: np.ndarray | None = None) -> Click | None:
    """RITM's simulated click for ``pred`` against ``gt`` (both ``(H, W)``, bool or 0/non-zero): positive
    (on the missed object) when the false negatives' deepest pixel lies deeper than the false positives',
    else negative; at that region's deepest pixel (distance to its edge, px; the first in row-major order
    among ties). ``clicked``: earlier clicks, whose pixels are never chosen again (RITM's
    ``not_clicked_map``); ``valid``: ``(H, W)`` bool, False where pixels are ignored. None when nothing is
    left to correct (``pred`` equals ``gt`` on the valid, unclicked pixels). CnnkitError on shapes that are
    not ``(H, W)`` or differ."""
    gt = _bool_mask(gt, "gt")
    pred = _bool_mask(pred, "pred", gt.shape)
    keep = np.ones(gt.shape, bool) if valid is None else _bool_mask(valid, "valid", gt.shape).copy()
    fn_dt = _edge_distance(gt & ~pred & keep)
    fp_dt = _edge_distance(~gt & pred & keep)
    for c in clicked:
        if 0 <= c.y < gt.shape[0] and 0 <= c.x < gt.shape[1]:
            fn_dt[c.y, c.x] = fp_dt[c.y, c.x] = 0.0
    fn_max, fp_max = float(fn_dt.max(initial=0.0)), float(fp_dt.max(initial=0.0))
    if fn_max == 0.0 and fp_max == 0.0:
        return None
    positive = fn_max > fp_max
    dt, best = (fn_dt, fn_max) if positive else (fp_dt, fp_max)
    y, x = np.argwhere(dt == best)[0]  # argwhere is row-major: the first of ties, as RITM
    return Click(int(y), int(x), bool(positive))


def first_click(gt: np.ndarray) -> Click | None:
    """The first click on an object: ``next_click(gt, zeros)``, a positive click at the pixel of ``gt``
    farthest from its edge; None for an empty mask."""
    gt = _bool_mask(gt, "gt")
    return next_click(gt, np.zeros_like(gt))


def click_maps(clicks: Sequence[Click], shape: tuple[int, int], radius: float = CLICK_RADIUS) -> np.ndarray:
    """``(2, H, W)`` float32 of 0 and 1: disks of ``radius`` px (pixels at a distance <= radius from the click)
    around the positive clicks (channel 0) and the negative clicks (channel 1); clicks outside the image draw
    what of their disk falls inside it."""
    h, w = int(shape[0]), int(shape[1])
    out = np.zeros((2, h, w), np.float32)
    r = max(0.0, float(radius))
    reach = int(np.floor(r))
    for c in clicks:
        y0, y1 = max(0, c.y - reach), min(h, c.y + reach + 1)
        x0, x1 = max(0, c.x - reach), min(w, c.x + reach + 1)
        if y0 >= y1 or x0 >= x1:
            continue
        yy, xx = np.ogrid[y0:y1, x0:x1]
        disk = (yy - c.y) ** 2 + (xx - c.x) ** 2 <= r * r
        channel = out[0 if c.positive else 1, y0:y1, x0:x1]
        channel[disk] = 1.0
    return out


def mask_iou(pred: np.ndarray, gt: np.ndarray, valid: np.ndarray | None = None) -> float:
    """Intersection over union of two ``(H, W)`` masks over the ``valid`` pixels (all by default); 1.0 when
    both are empty there."""
    gt = _bool_mask(gt, "gt")
    pred = _bool_mask(pred, "pred", gt.shape)
    if valid is not None:
        keep = _bool_mask(valid, "valid", gt.shape)
        pred, gt = pred & keep, gt & keep
    union = int(np.count_nonzero(pred | gt))
    return 1.0 if union == 0 else int(np.count_nonzero(pred & gt)) / union


def simulate(segment: Segmenter, gt: np.ndarray, max_clicks: int = MAX_CLICKS, stop_iou: float = 0.90,
             min_clicks: int = 5, *, valid: np.ndarray | None = None) -> np.ndarray:
    """RITM's evaluation of one object: click (:func:`next_click`), ``segment(clicks_so_far, previous_mask)``
    -> bool ``(H, W)`` (``previous_mask`` None before the first answer), score IoU; stop once the IoU
    reaches ``stop_iou`` after at least ``min_clicks`` clicks, or when nothing is left to correct.
    Returns ``(max_clicks,)`` float64: the IoU after clicks 1..max_clicks, the last value repeated after a
    stop (an empty ``gt``: all 1.0, no click made). ``valid``: ``(H, W)`` bool, False for ignored pixels."""
    gt = _bool_mask(gt, "gt")
    if max_clicks < 1:
        raise CnnkitError(f"max_clicks {max_clicks}: must be at least 1")
    ious = np.empty(max_clicks, np.float64)
    clicks: list[Click] = []
    prev: np.ndarray | None = None
    iou = mask_iou(np.zeros_like(gt), gt, valid)
    done = 0
    while done < max_clicks:
        click = next_click(gt, np.zeros_like(gt) if prev is None else prev, clicked=clicks, valid=valid)
        if click is None:
            break
        clicks.append(click)
        prev = _bool_mask(segment(list(clicks), prev), "the segmenter's answer", gt.shape)
        iou = mask_iou(prev, gt, valid)
        ious[done] = iou
        done += 1
        if iou >= stop_iou and done >= min_clicks:
            break
    ious[done:] = iou
    return ious


def clicks_to_reach(ious: np.ndarray, threshold: float) -> np.ndarray:
    """``(N, K)`` IoU after each click -> ``(N,)`` int: the 1-based number of the first click whose IoU
    reaches ``threshold``, K when none does (RITM's ``_get_noc``)."""
    arr = np.atleast_2d(np.asarray(ious, dtype=np.float64))
    reached = arr >= threshold
    k = arr.shape[1]
    return np.where(reached.any(1), reached.argmax(1) + 1, k).astype(np.int64)


def _as_array(outputs: Any) -> np.ndarray:
    if hasattr(outputs, "detach"):  # a torch tensor, without importing torch here
        outputs = outputs.detach().float().cpu().numpy()
    return np.asarray(outputs, dtype=np.float64)


class NocMetrics:
    """The engine's metrics for click models: ``update(outputs, targets)`` streams ``(B, K)`` IoUs after each
    of K clicks (a tensor or an array; ``targets`` ignored); ``compute()`` gives noc85, noc90 (mean clicks),
    iou@1, iou@3, iou@5 (mean IoU after that many clicks, 0..1), fail85 (fraction of objects never
    reaching 0.85) and objects (how many); NaN for all but objects before any object."""

    def __init__(self, max_clicks: int = MAX_CLICKS):
        self.max_clicks = max_clicks
        self._last: dict[str, float] = {}
        self.reset()

    def reset(self) -> None:
        self._rows: list[np.ndarray] = []
        self._last = {}

    def update(self, outputs: Any, targets: Any = None) -> None:
        arr = _as_array(outputs)
        if arr.ndim != 2:
            raise CnnkitError(f"NocMetrics: expected (B, clicks) IoUs, got shape {arr.shape}")
        self._rows.append(arr)

    def ious(self) -> np.ndarray:
        """``(N, K)`` float64: every object's IoU after each click so far."""
        if not self._rows:
            return np.zeros((0, self.max_clicks))
        return np.concatenate(self._rows)

    def compute(self) -> dict[str, float]:
        arr = self.ious()
        n = len(arr)
        nan = float("nan")
        out = {"noc85": nan, "noc90": nan, "iou@1": nan, "iou@3": nan, "iou@5": nan, "fail85": nan,
               "objects": float(n)}
        if n:
            noc85 = clicks_to_reach(arr, 0.85)
            out["noc85"] = float(noc85.mean())
            out["noc90"] = float(clicks_to_reach(arr, 0.90).mean())
            for k in (1, 3, 5):
                out[f"iou@{k}"] = float(arr[:, min(k, arr.shape[1]) - 1].mean())
            out["fail85"] = float((arr < 0.85).all(1).mean())
        self._last = out
        return dict(out)

    def save(self, folder: Path) -> list[Path]:
        """noc.csv in ``folder``: one row per object, its IoU after each click (columns iou_1..iou_K)."""
        from cnnkit.files import atomic_write_csv

        arr = self.ious()
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / "noc.csv"
        fields = ["object"] + [f"iou_{k + 1}" for k in range(arr.shape[1])]
        rows = [{"object": i, **{f"iou_{k + 1}": round(float(v), 6) for k, v in enumerate(row)}}
                for i, row in enumerate(arr)]
        atomic_write_csv(path, rows, fields)
        return [path]

    def table(self) -> str:
        """The figures as two lines of text; '' before compute()."""
        s = self._last
        if not s:
            return ""
        if not s["objects"]:
            return "objects 0: no object to click on"
        return "\n".join([
            f"objects {int(s['objects']):,}  NoC@85 {s['noc85']:.2f}  NoC@90 {s['noc90']:.2f}  "
            f"fail@85 {s['fail85']:.1%}",
            f"IoU after 1 click {s['iou@1']:.1%}  3 clicks {s['iou@3']:.1%}  5 clicks {s['iou@5']:.1%}",
        ])

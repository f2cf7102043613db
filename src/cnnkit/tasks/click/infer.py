"""Running a click model: one answer to the user's clicks (``predict_clicks``), RITM's iterative training step
(``iterative_forward``) and the NoC protocol over every object of a batch of images (``noc_forward``).

The model works at the working size (the card's ``max_size``); clicks, previous masks and answers are in each
image's own pixels, mapped to and from it here. A click is a disk of the card's ``click_radius`` px at the
working size; the previous mask is the model's last probability map (0..1).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from cnnkit.data.images import resized_array, scaled_size
from cnnkit.errors import CnnkitError
from cnnkit.metrics.clicks import CLICK_RADIUS, MAX_CLICKS, Click, click_maps, next_click
from cnnkit.tasks.click.sampling import to_working

STOP_IOU, MIN_CLICKS = 0.90, 5  # the NoC protocol: stop at IoU 0.90 once 5 clicks were made (RITM)
CHUNK_PIXELS = 4_000_000  # working-size pixels through the model at a time when scoring (objects of one image)
IGNORE = 255

Box = tuple[int, int, int, int]  # y0, y1, x0, x1 (ends exclusive)


def _device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


def guide(clicks: Sequence[Click], size: tuple[int, int], radius: float, prev: torch.Tensor | None,
          device: torch.device) -> torch.Tensor:
    """``(3, h, w)`` float: disks around the positive and the negative clicks (working-size pixels), and the
    previous mask ``prev`` ``(h, w)`` 0..1 (zeros when None)."""
    maps = torch.from_numpy(click_maps(clicks, size, radius)).to(device)
    prev = torch.zeros(size, device=device) if prev is None else prev.to(device).float().reshape(size)
    return torch.cat([maps, prev[None]])


@torch.no_grad()
def predict_clicks(model: nn.Module, image: Image.Image, clicks: Sequence[Click], prev: np.ndarray | None
                   ) -> np.ndarray:
    """The object under ``clicks`` in ``image``: ``(H, W)`` float32 probability at the image's own size.

    ``clicks`` (``cnnkit.metrics.clicks.Click``: row ``y``, column ``x``) and ``prev`` (the previous answer,
    ``(H, W)`` 0..1 or bool, or None) are in the image's own pixels. No clicks: ``prev`` as it is (zeros
    without one). CnnkitError for a click outside the image or a ``prev`` of another size."""
    width, height = image.size
    for c in clicks:
        if not (0 <= c.y < height and 0 <= c.x < width):
            raise CnnkitError(f"click at x={c.x}, y={c.y}: outside the {width}x{height} image; give clicks in the "
                              "image's own pixels")
    if prev is not None and np.shape(prev) != (height, width):
        raise CnnkitError(f"previous mask of shape {np.shape(prev)} for a {width}x{height} image; give the "
                          f"({height}, {width}) mask of this image, or None")
    if not clicks:
        return np.zeros((height, width), np.float32) if prev is None else np.asarray(prev, np.float32)
    meta, device = model.meta, _device(model)
    w, h = scaled_size(width, height, meta.max_size)
    x = torch.from_numpy(resized_array(image, meta.in_chans, (w, h), meta.pixel_max)).permute(2, 0, 1)[None]
    before = None
    if prev is not None:
        before = torch.from_numpy(np.asarray(prev, np.float32))[None, None]
        if (h, w) != (height, width):
            before = F.interpolate(before, size=(h, w), mode="bilinear", antialias=True, align_corners=False)
    working = [to_working(c, (height, width), (h, w)) for c in clicks]
    radius = float(meta.value("click_radius", CLICK_RADIUS))
    logits = model(x.to(device), guide(working, (h, w), radius, before, device)[None]).float()
    if (h, w) != (height, width):
        logits = F.interpolate(logits, size=(height, width), mode="bilinear", align_corners=False)
    return torch.sigmoid(logits)[0, 0].cpu().numpy()


def _box(mask: np.ndarray) -> Box | None:
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    return None if not len(rows) else (int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1)


def _union(a: Box | None, b: Box | None, shape: tuple[int, int], margin: int = 0) -> Box | None:
    boxes = [x for x in (a, b) if x is not None]
    if not boxes:
        return None
    return (max(0, min(x[0] for x in boxes) - margin), min(shape[0], max(x[1] for x in boxes) + margin),
            max(0, min(x[2] for x in boxes) - margin), min(shape[1], max(x[3] for x in boxes) + margin))


def click_near(gt: np.ndarray, pred: np.ndarray, clicked: Sequence[Click] = (), valid: np.ndarray | None = None,
               box: Box | None = None) -> Click | None:
    """``next_click`` computed inside the box of ``gt | pred`` and one pixel around it (``box``, when the
    caller knows it): the error regions lie there, the pixel around keeps their edges, and the image's own
    border is still padded. The same click as on the whole image, at a fraction of the distance transforms."""
    box = box or _union(_box(gt), _box(pred), gt.shape, 1)
    if box is None:
        return None
    y0, y1, x0, x1 = box
    inside = [Click(c.y - y0, c.x - x0, c.positive) for c in clicked]
    found = next_click(gt[y0:y1, x0:x1], pred[y0:y1, x0:x1], clicked=inside,
                       valid=None if valid is None else valid[y0:y1, x0:x1])
    return None if found is None else Click(found.y + y0, found.x + x0, found.positive)


def iterative_forward(iterations: int, radius: float) -> Callable[[nn.Module, torch.Tensor, Any], torch.Tensor]:
    """The training forward (``TaskData.train_forward``) of RITM's iterative training: 0..``iterations`` clicks
    (drawn per batch) placed by the clicker on the model's own prediction, made without gradients in evaluation
    mode, each prediction fed back as the previous mask; then the forward that learns. ``targets``: the
    training set's {"mask", "clicks"}; returns logits ``(B, 1, h, w)``."""
    def forward(model: nn.Module, images: torch.Tensor, targets: Any) -> torch.Tensor:
        clicks = targets["clicks"].float()
        prev = torch.zeros_like(clicks[:, :1])
        rounds = int(torch.randint(0, iterations + 1, ()).item()) if iterations else 0
        if rounds:
            mask = targets["mask"].cpu().numpy()
            gt, valid = mask == 1, mask != IGNORE
            modes = {m: m.training for m in model.modules()}  # as they were (norms held by a caller stay held)
            model.eval()
            with torch.no_grad():
                for _ in range(rounds):
                    prev = torch.sigmoid(model(images, torch.cat([clicks, prev], 1)).float())
                    pred = (prev[:, 0] > 0.5).cpu().numpy()
                    for b in range(len(gt)):
                        c = click_near(gt[b], pred[b], valid=valid[b])
                        if c is not None:
                            disk = torch.from_numpy(click_maps([c], gt.shape[1:], radius)).to(clicks.device)
                            clicks[b] = torch.maximum(clicks[b], disk)
            for m, mode in modes.items():
                m.train(mode)
        return model(images, torch.cat([clicks, prev], 1))
    return forward


@dataclass
class Track:
    """One object being clicked on by the NoC protocol."""

    ident: int
    box: Box  # its truth's bounding box
    clicks: list[Click] = field(default_factory=list)
    prev: torch.Tensor | None = None  # the last probability map, working size
    pred_box: Box | None = None  # where the last answer lies (full size), and the answer there
    pred: np.ndarray | None = None
    ious: list[float] = field(default_factory=list)
    done: bool = False


def noc_forward(max_clicks: int = MAX_CLICKS) -> Callable[[nn.Module, list[torch.Tensor]], torch.Tensor]:
    """Evaluation's forward: images packed with their objects (``data.ClickValSet``: ``(C + 1, H, W)`` int32)
    -> ``(objects, max_clicks)`` IoUs of the NoC protocol (``cnnkit.metrics.clicks.simulate``'s rules: RITM's
    clicker, stop at IoU 0.90 after 5 clicks or when nothing is left to correct, the last IoU repeated), every
    object of an image clicked on in one batch, at the image's own size (the model's card gives the working
    size and the click radius)."""
    @torch.no_grad()
    def forward(model: nn.Module, images: list[torch.Tensor]) -> torch.Tensor:
        radius = float(model.meta.value("click_radius", CLICK_RADIUS))
        rows = [score_image(model, packed, radius, max_clicks) for packed in images]
        return torch.cat(rows) if rows else torch.zeros((0, max_clicks))
    return forward


def score_image(model: nn.Module, packed: torch.Tensor, radius: float, max_clicks: int) -> torch.Tensor:
    """The NoC protocol on every object of one packed image: ``(objects, max_clicks)`` IoUs."""
    from scipy import ndimage

    channels = packed.shape[0] - 1
    objects = packed[channels].cpu().numpy()
    full = objects.shape
    w, h = scaled_size(full[1], full[0], model.meta.max_size)
    x = packed[:channels][None].float()
    if (h, w) != full:  # the working image, as PIL's bilinear (antialiased) resize makes it for predict_clicks
        x = F.interpolate(x, size=(h, w), mode="bilinear", antialias=True, align_corners=False).round().clamp(0, 255)
    x = x / 255
    valid = objects >= 0
    slices = ndimage.find_objects(np.maximum(objects, 0))
    tracks = [Track(k + 1, (s[0].start, s[0].stop, s[1].start, s[1].stop)) for k, s in enumerate(slices) if s]
    chunk = max(1, CHUNK_PIXELS // (h * w))
    for _ in range(max_clicks):
        asking = [t for t in tracks if not t.done and _click(t, objects, valid)]
        for start in range(0, len(asking), chunk):
            _answer(model, x, asking[start:start + chunk], objects, valid, radius)
    rows = [t.ious + [t.ious[-1] if t.ious else 1.0] * (max_clicks - len(t.ious)) for t in tracks]
    return torch.tensor(rows, dtype=torch.float64).reshape(len(tracks), max_clicks)


def _click(track: Track, objects: np.ndarray, valid: np.ndarray) -> bool:
    """The track's next click added; False (and done) when nothing is left to correct."""
    box = _union(track.box, track.pred_box, objects.shape, 1)
    assert box is not None  # every track's truth has pixels
    y0, y1, x0, x1 = box
    gt, pred = _crops(track, objects, box)
    c = click_near(gt, pred, [Click(k.y - y0, k.x - x0, k.positive) for k in track.clicks], valid[y0:y1, x0:x1],
                   (0, y1 - y0, 0, x1 - x0))
    if c is None:
        track.done = True
        return False
    track.clicks.append(Click(c.y + y0, c.x + x0, c.positive))
    return True


def _answer(model: nn.Module, x: torch.Tensor, tracks: list[Track], objects: np.ndarray, valid: np.ndarray,
            radius: float) -> None:
    """One forward for ``tracks`` (each with a new click): their answers, IoUs and whether they are done."""
    full, size = objects.shape, x.shape[-2:]
    device = x.device
    guides = torch.stack([guide([to_working(c, full, (size[0], size[1])) for c in t.clicks], (size[0], size[1]),
                                radius, t.prev, device) for t in tracks])
    logits = model(x.expand(len(tracks), -1, -1, -1), guides).float()
    probs = torch.sigmoid(logits)
    if tuple(size) != full:
        logits = F.interpolate(logits, size=full, mode="bilinear", align_corners=False)
    answers = logits[:, 0] > 0
    for t, prob, answer in zip(tracks, probs, answers):
        t.prev = prob[0]
        rows, cols = torch.nonzero(answer.any(1)).flatten(), torch.nonzero(answer.any(0)).flatten()
        if len(rows):
            t.pred_box = (int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1)
            y0, y1, x0, x1 = t.pred_box
            t.pred = answer[y0:y1, x0:x1].cpu().numpy()
        else:
            t.pred_box, t.pred = None, None
        t.ious.append(_iou(t, objects, valid))
        if t.ious[-1] >= STOP_IOU and len(t.clicks) >= MIN_CLICKS:
            t.done = True


def _iou(track: Track, objects: np.ndarray, valid: np.ndarray) -> float:
    box = _union(track.box, track.pred_box, objects.shape)
    assert box is not None
    y0, y1, x0, x1 = box
    gt, pred = _crops(track, objects, box)
    keep = valid[y0:y1, x0:x1]
    union = int(np.count_nonzero((gt | pred) & keep))
    return 1.0 if union == 0 else int(np.count_nonzero(gt & pred & keep)) / union


def _crops(track: Track, objects: np.ndarray, box: Box) -> tuple[np.ndarray, np.ndarray]:
    """The track's truth and its last answer inside ``box`` (full-size pixels), both bool."""
    y0, y1, x0, x1 = box
    gt = objects[y0:y1, x0:x1] == track.ident
    pred = np.zeros_like(gt)
    if track.pred_box is not None and track.pred is not None:
        py0, py1, px0, px1 = track.pred_box
        pred[py0 - y0:py1 - y0, px0 - x0:px1 - x0] = track.pred
    return gt, pred

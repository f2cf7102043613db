"""Instance inference: whole images, or tiles whose objects are merged across tile borders.

Tiling: tiles of ``side`` pixels overlap by ``overlap`` of a side. A detection is *cut* when its box
reaches (within EDGE_MARGIN px) an edge of its tile that lies inside the image: its tile saw only part
of the object. Two detections from different tiles, of the same class, are the same object when,
inside the region both tiles saw (where both looked at the same pixels):

- neither is cut (the object was seen whole twice): their masks (boxes for detect) overlap with
  IoU >= MERGE_IOU;
- one is cut: more than MERGE_COVER of the cut one lies inside the other. A fragment's mask is
  least reliable where the tile cut it, and a sliver's IoU with the whole object falls below any
  fixed threshold at one pixel of error; covering measures what a fragment is: a part of the other;
- both are cut (an object wider than the overlap): more than MERGE_COVER of the smaller one.

Each group of such detections becomes one object with the best score: the mask and box of its best
uncut member when it has one (the tile that saw the whole object), otherwise the union of the parts
and their enclosing box.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torchvision.ops import box_iou, clip_boxes_to_image

from cnnkit.data.rle import encode
from cnnkit.metrics.coco import paste_local
from cnnkit.tasks.common import tile_starts
from cnnkit.tasks.instance import working_scale, working_size

MERGE_IOU = 0.5  # IoU inside the shared region at or above which two whole views are one object
MERGE_COVER = 0.5  # share of a cut detection inside another above which it is a part of that object
EDGE_MARGIN = 2  # px: a box this close to an inner tile edge was cut by that edge


@dataclass
class Detection:
    box: np.ndarray  # (4,) xyxy in image pixels
    label: int  # 1-based class
    score: float
    mask: np.ndarray | None = None  # (h, w) bool, placed at (top, left)
    top: int = 0
    left: int = 0
    tile: int = 0

    def mask_in(self, region: tuple[int, int, int, int]) -> np.ndarray:
        """This object's mask inside ``region`` (y0, x0, y1, x1) of the image."""
        y0, x0, y1, x1 = region
        out = np.zeros((max(y1 - y0, 0), max(x1 - x0, 0)), bool)
        if self.mask is None:
            bx0, by0, bx1, by1 = np.round(self.box).astype(int)
            out[max(by0 - y0, 0):max(by1 - y0, 0), max(bx0 - x0, 0):max(bx1 - x0, 0)] = True
            return out
        h, w = self.mask.shape
        ty0, tx0 = max(self.top, y0), max(self.left, x0)
        ty1, tx1 = min(self.top + h, y1), min(self.left + w, x1)
        if ty1 > ty0 and tx1 > tx0:
            out[ty0 - y0:ty1 - y0, tx0 - x0:tx1 - x0] = self.mask[ty0 - self.top:ty1 - self.top,
                                                                  tx0 - self.left:tx1 - self.left]
        return out


def _detections(output: dict[str, torch.Tensor], size: tuple[int, int], offset: tuple[int, int] = (0, 0),
                tile: int = 0) -> list[Detection]:
    dy, dx = offset
    boxes = output["boxes"].float().cpu()
    shifted = (boxes + torch.tensor([dx, dy, dx, dy])).numpy()
    labels, scores = output["labels"].tolist(), output["scores"].tolist()
    if "masks" not in output:
        return [Detection(b, c, s, tile=tile) for b, c, s in zip(shifted, labels, scores)]
    pasted = paste_local(output["masks"].cpu(), boxes, size)
    return [Detection(b, c, s, m, top + dy, left + dx, tile)
            for b, c, s, (m, top, left) in zip(shifted, labels, scores, pasted)]


@dataclass(frozen=True)
class PostProcess:
    """The detector's post-processing settings for one call: torchvision keeps them as attributes of its
    ``roi_heads``; here they are arguments, so that prediction never changes the model (and calls with
    different settings can run at once)."""

    score_thresh: float  # lowest class score kept (probability)
    nms_thresh: float  # box IoU above which the lower-scored same-class box is dropped
    detections: int  # most objects per image


def run_detector(net: nn.Module, images: list[torch.Tensor], post: PostProcess) -> list[dict[str, torch.Tensor]]:
    """torchvision's ``GeneralizedRCNN.forward`` in evaluation, for normalised ``(C, H, W)`` images, with
    ``post``'s settings on a shallow copy of the RoI heads (their weights are shared, not copied)."""
    heads = copy.copy(net.roi_heads)
    heads.score_thresh, heads.nms_thresh, heads.detections_per_img = post.score_thresh, post.nms_thresh, \
        post.detections
    original = [tuple(im.shape[-2:]) for im in images]
    batch, _ = net.transform(images)
    features = net.backbone(batch.tensors)
    proposals, _ = net.rpn(batch, features)
    detections, _ = heads(features, proposals, batch.image_sizes)
    return net.transform.postprocess(detections, batch.image_sizes, original)


def detect(model: nn.Module, images: list[torch.Tensor], post: PostProcess) -> list[dict[str, torch.Tensor]]:
    """uint8 or 0..1 ``(C, H, W)`` images through an ``ImageModel`` detector in eval mode. Images of
    different sizes go one at a time: batching pads them, and GroupNorm would count the padding."""
    x = [model.normalize(im) for im in images]
    if len({im.shape for im in x}) > 1:
        return [out for im in x for out in run_detector(model.net, [im], post)]
    return run_detector(model.net, x, post)


def scaled_image(image: torch.Tensor, factor: float) -> torch.Tensor:
    """A ``(C, H, W)`` uint8 or float image resized by ``factor`` to ``working_size`` (bilinear, antialiased);
    the same dtype back."""
    if factor == 1.0:
        return image
    size = working_size(image.shape[-2], image.shape[-1], factor)
    out = torch.nn.functional.interpolate(image[None].float(), size=size, mode="bilinear", antialias=True)[0]
    return out.round().clamp(0, 255).byte() if image.dtype == torch.uint8 else out.to(image.dtype)


def grown_forward(run: Callable[[nn.Module, list[torch.Tensor]], list[dict]], model: nn.Module,
                  images: list[torch.Tensor]) -> list[dict[str, torch.Tensor]]:
    """``run(model, images)`` (a detector in eval mode) with each image whose longer side is under ``MIN_SIDE``
    grown to it (``working_scale``), as ``predict`` grows it, and its boxes mapped back to and clipped to its
    own size. Masks need nothing: the detectors return them in box coordinates (``FixedScaleTransform``)."""
    factors = [working_scale(im.shape[-2], im.shape[-1], 0) for im in images]
    if all(f == 1.0 for f in factors):
        return run(model, images)
    outputs = run(model, [scaled_image(im, f) for im, f in zip(images, factors)])
    for im, f, out in zip(images, factors, outputs):
        if f != 1.0:
            out["boxes"] = clip_boxes_to_image(out["boxes"] / f, tuple(im.shape[-2:]))
    return outputs


def grown_samples(images: list[torch.Tensor], targets: list[dict]) -> tuple[list[torch.Tensor], list[dict]]:
    """Training samples whose longer side is under ``MIN_SIDE`` grown to it, as ``grown_forward`` grows them,
    with their targets' boxes and masks (nearest): a training crop that small, alone in its batch, leaves the
    deepest GroupNorm level one value per group, and torch raises."""
    images, targets = list(images), list(targets)
    for i, im in enumerate(images):
        factor = working_scale(im.shape[-2], im.shape[-1], 0)
        if factor == 1.0:
            continue
        images[i] = scaled_image(im, factor)
        size = tuple(images[i].shape[-2:])
        target = dict(targets[i], boxes=clip_boxes_to_image(targets[i]["boxes"] * factor, size))
        if "masks" in target:
            masks = target["masks"]
            target["masks"] = (torch.nn.functional.interpolate(masks[None].float(), size=size)[0].to(masks.dtype)
                               if len(masks) else masks.new_zeros((0, *size)))  # an image without objects
        targets[i] = target
    return images, targets


def detect_image(model: nn.Module, image: torch.Tensor, post: PostProcess) -> list[Detection]:
    """One ``(C, H, W)`` uint8 image through the model in eval mode."""
    return _detections(detect(model, [image], post)[0], tuple(image.shape[-2:]))


def detect_tiled(model: nn.Module, image: torch.Tensor, side: int, overlap: float, batch: int = 4,
                 post: PostProcess | None = None) -> list[Detection]:
    """Tiles of ``side`` px overlapping by ``overlap`` (fraction), ``batch`` tiles per forward pass;
    detections merged across tiles (see the module docstring)."""
    height, width = image.shape[-2:]
    step = max(1, int(side * (1 - overlap)))
    tiles = [(y, x) for y in tile_starts(height, side, step) for x in tile_starts(width, side, step)]
    dets: list[Detection] = []
    for i in range(0, len(tiles), batch):
        chunk = tiles[i:i + batch]
        crops = [image[:, y:y + side, x:x + side] for y, x in chunk]
        outputs = model(crops) if post is None else detect(model, crops, post)
        for k, (crop, out) in enumerate(zip(crops, outputs)):
            dets += _detections(out, tuple(crop.shape[-2:]), chunk[k], tile=i + k)
    rects = [(y, x, min(y + side, height), min(x + side, width)) for y, x in tiles]
    return merge_tiles(dets, rects)


def is_cut(d: Detection, rect: tuple[int, int, int, int], height: int, width: int) -> bool:
    """Whether ``d``'s box reaches an edge of its tile ``rect`` (y0, x0, y1, x1) that lies inside
    the ``height`` x ``width`` image, so that the tile saw only part of the object."""
    y0, x0, y1, x1 = rect
    bx0, by0, bx1, by1 = (float(v) for v in d.box)
    return ((y0 > 0 and by0 <= y0 + EDGE_MARGIN) or (x0 > 0 and bx0 <= x0 + EDGE_MARGIN)
            or (y1 < height and by1 >= y1 - EDGE_MARGIN) or (x1 < width and bx1 >= x1 - EDGE_MARGIN))


def same_object(a: Detection, b: Detection, a_cut: bool, b_cut: bool,
                rects: list[tuple[int, int, int, int]]) -> bool:
    """The module docstring's rule, measured inside the region both tiles saw."""
    ra, rb = rects[a.tile], rects[b.tile]
    y0, x0 = max(ra[0], rb[0], int(min(a.box[1], b.box[1]))), max(ra[1], rb[1], int(min(a.box[0], b.box[0])))
    y1 = min(ra[2], rb[2], int(np.ceil(max(a.box[3], b.box[3]))))
    x1 = min(ra[3], rb[3], int(np.ceil(max(a.box[2], b.box[2]))))
    if y1 <= y0 or x1 <= x0:
        return False
    ma, mb = a.mask_in((y0, x0, y1, x1)), b.mask_in((y0, x0, y1, x1))
    inter = int(np.logical_and(ma, mb).sum())
    if inter == 0:
        return False
    if a_cut or b_cut:
        part = min(ma.sum() if a_cut else np.inf, mb.sum() if b_cut else np.inf)
        return inter > MERGE_COVER * part
    return inter >= MERGE_IOU * np.logical_or(ma, mb).sum()


def merge_tiles(dets: list[Detection], rects: list[tuple[int, int, int, int]]) -> list[Detection]:
    """Group the same object seen by several tiles (union-find) and fuse each group."""
    if len(rects) == 1 or not dets:
        return dets
    height, width = max(r[2] for r in rects), max(r[3] for r in rects)
    cut = [is_cut(d, rects[d.tile], height, width) for d in dets]
    parent = list(range(len(dets)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, j in _touching_pairs(dets, rects):
        a, b = dets[i], dets[j]
        if a.label == b.label and same_object(a, b, cut[i], cut[j], rects):
            parent[root(j)] = root(i)
    groups: dict[int, list[int]] = {}
    for i in range(len(dets)):
        groups.setdefault(root(i), []).append(i)
    return [_fuse([dets[i] for i in g], [cut[i] for i in g]) for g in groups.values()]


def _touching_pairs(dets: list[Detection], rects: list[tuple[int, int, int, int]]) -> list[tuple[int, int]]:
    """Pairs (i < j) of detections from two different, overlapping tiles whose boxes overlap. Boxes are
    compared tile pair by tile pair: one matrix over all detections took tiles x objects squared memory
    (6 GB for 130 tiles of 300 objects, and the kernel killed the run)."""
    by_tile: dict[int, list[int]] = {}
    for i, d in enumerate(dets):
        by_tile.setdefault(d.tile, []).append(i)
    boxes = torch.from_numpy(np.stack([d.box for d in dets]))
    pairs = []
    tiles = sorted(by_tile)
    for k, ta in enumerate(tiles):
        for tb in tiles[k + 1:]:
            (ay0, ax0, ay1, ax1), (by0, bx0, by1, bx1) = rects[ta], rects[tb]
            if min(ay1, by1) <= max(ay0, by0) or min(ax1, bx1) <= max(ax0, bx0):
                continue  # tiles that share no pixel hold no overlapping boxes
            ia, ib = by_tile[ta], by_tile[tb]
            for a, b in (box_iou(boxes[ia], boxes[ib]) > 0).nonzero().tolist():
                pairs.append((min(ia[a], ib[b]), max(ia[a], ib[b])))
    return sorted(pairs)


def _fuse(group: list[Detection], cut: list[bool]) -> Detection:
    if len(group) == 1:
        return group[0]
    score = max(d.score for d in group)
    whole = [d for d, c in zip(group, cut) if not c]
    if whole:  # a tile saw the object whole: its view beats a patchwork of fragments
        best = max(whole, key=lambda d: d.score)
        return Detection(best.box, best.label, score, best.mask, best.top, best.left, best.tile)
    best = max(group, key=lambda d: d.score)
    box = np.array([min(d.box[0] for d in group), min(d.box[1] for d in group),
                    max(d.box[2] for d in group), max(d.box[3] for d in group)], np.float32)
    if best.mask is None:
        return Detection(box, best.label, score, tile=best.tile)
    top = min(d.top for d in group)
    left = min(d.left for d in group)
    bottom = max(d.top + (d.mask.shape[0] if d.mask is not None else 0) for d in group)
    right = max(d.left + (d.mask.shape[1] if d.mask is not None else 0) for d in group)
    mask = np.zeros((bottom - top, right - left), bool)
    for d in group:
        mask |= d.mask_in((top, left, bottom, right))
    return Detection(box, best.label, score, mask, top, left, best.tile)


def to_instances(dets: list[Detection], classes: list[str], factor: float, size: tuple[int, int],
                 masks: bool) -> list[dict]:
    """JSON-able instances at the original image ``size`` (H, W); ``factor`` is the working scale. Boxes are
    clipped to the image: the working size is rounded, so a box at its edge may map a fraction of a pixel out."""
    out = []
    height, width = size
    for d in dets:
        box = np.clip(np.asarray(d.box, np.float64) / factor, 0, [width, height, width, height])
        inst = {"class": classes[d.label - 1], "class_id": d.label - 1, "score": round(d.score, 4),
                "box": [round(float(v), 2) for v in box]}
        if masks and d.mask is not None:
            inst["rle"] = encode(_full_mask(d, factor, size))
        out.append(inst)
    return out


def _full_mask(d: Detection, factor: float, size: tuple[int, int]) -> np.ndarray:
    """The detection's mask on an image-sized canvas, scaled back from the working scale."""
    assert d.mask is not None  # to_instances asks only for detections with masks
    if factor == 1.0:
        full = np.zeros(size, bool)
        h, w = d.mask.shape
        full[d.top:d.top + h, d.left:d.left + w] = d.mask[:size[0] - d.top, :size[1] - d.left]
        return full
    work = working_size(*size, factor)
    small = d.mask_in((0, 0, *work)).astype(np.float32)
    resized = torch.nn.functional.interpolate(torch.from_numpy(small)[None, None], size=size, mode="bilinear")
    return resized[0, 0].numpy() > 0.5

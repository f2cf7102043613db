"""What ``cnnkit explain`` maps in a detector's image (instance and detect): one map per detection.

The detections are found once, as ``predict`` finds them on a whole image; each is then scored on any
batch of images by the score of the detection that matches it there (pytorch-grad-cam's
``FasterRCNNBoxScoreTarget``): among the detections of its class whose box overlaps its own with IoU at least
``MATCH_IOU``, the highest score times that IoU (the IoU without gradient); 0 where none is left. torchvision's
RoI heads keep the gradient through their class scores, so the score is differentiable in the image and in
every activation of the backbone.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import torch
from torch import nn
from torchvision.ops import box_iou

from cnnkit.engine.task import ExplainRequest, ExplainTargets
from cnnkit.errors import CnnkitError, did_you_mean
from cnnkit.tasks.instance.infer import Detection, PostProcess, detect_image, run_detector

MAX_TARGETS = 10  # detections explained when --target names none (the highest-scored)
MATCH_IOU = 0.5  # box IoU at or above which a detection of a changed image is the explained one
# the scoring pass keeps detections down to this score, so that a weakened object still counts, and
# counts little: a masked or blurred image (Score-CAM, occlusion, IG) weakens objects below the threshold
SCORE_FLOOR = 0.01


def detection_targets(model: nn.Module, image: torch.Tensor, request: ExplainRequest, options: Any,
                      original_size: tuple[int, int], own_limit: int) -> ExplainTargets:
    """The detections of ``image`` (``(C, h, w)`` uint8, the working image as ``predict`` makes it) to explain.

    ``options``: the task's prediction options (``score_thresh``, ``nms_thresh``, ``max_det``); ``own_limit``:
    the model's own detection limit. Detections above ``score_thresh`` are numbered ``#1``, ``#2``, ... by score,
    as ``predict`` orders its instances; ``request.target`` keeps a class (its name or its index) or one
    detection (``#k``); without it the ``MAX_TARGETS`` highest-scored are explained. ``regions``: each
    detection's mask (its box for a detector without masks), bool ``(h, w)``. CnnkitError when nothing is
    detected, or the target matches no detection.
    """
    device = next(model.parameters()).device
    image = image.to(device)
    post = PostProcess(options.score_thresh, options.nms_thresh, max(options.max_det, own_limit))
    with torch.no_grad():
        found = sorted(detect_image(model, image, post), key=lambda d: -d.score)
    if options.max_det:
        found = found[:options.max_det]
    classes = list(model.meta.classes)
    chosen = choose(found, request.target, classes, options.score_thresh)
    height, width = image.shape[-2:]
    boxes = torch.as_tensor([found[k].box.tolist() for k in chosen], dtype=torch.float32, device=device)
    labels = torch.as_tensor([found[k].label for k in chosen], dtype=torch.int64, device=device)
    scoring = PostProcess(min(SCORE_FLOOR, options.score_thresh), options.nms_thresh, post.detections)
    return ExplainTargets(
        inputs=image[None].float() / 255.0,
        labels=[f"{classes[found[k].label - 1]} #{k + 1} ({found[k].score:.2f})" for k in chosen],
        score=matched_score(model, boxes, labels, scoring),
        regions=[found[k].mask_in((0, 0, height, width)) for k in chosen],
        original_size=original_size)


def choose(found: list[Detection], target: str, classes: list[str], threshold: float) -> list[int]:
    """Indices into ``found`` (sorted by score) of the detections ``target`` asks for: '' the first
    ``MAX_TARGETS``, '#k' the k-th, a class name or index that class's first ``MAX_TARGETS``."""
    where = f"above --score-thresh {threshold:g}"
    if not found:
        raise CnnkitError(f"no object detected {where}: nothing to explain; lower --score-thresh")
    target = target.strip()
    if not target:
        return list(range(min(MAX_TARGETS, len(found))))
    if target.startswith("#"):
        k = int(target[1:]) if target[1:].isdigit() else 0
        if not 1 <= k <= len(found):
            raise CnnkitError(f"--target {target}: {len(found)} object(s) detected {where}, numbered #1 to "
                              f"#{len(found)} by score; name one of them, or a class")
        return [k - 1]
    label = class_label(target, classes)
    picked = [i for i, d in enumerate(found) if d.label == label][:MAX_TARGETS]
    if not picked:
        raise CnnkitError(f"--target {target}: no {classes[label - 1]} detected {where} (detected: "
                          f"{', '.join(sorted({classes[d.label - 1] for d in found}))}); lower --score-thresh, "
                          "or name another class")
    return picked


def class_label(target: str, classes: list[str]) -> int:
    """The detector's 1-based label of a class name (or 0-based class index, as ``class_id``)."""
    if target in classes:
        return classes.index(target) + 1
    folded = [c.lower() for c in classes]
    if target.lower() in folded:
        return folded.index(target.lower()) + 1
    if target.isdigit() and int(target) < len(classes):
        return int(target) + 1
    raise CnnkitError(f"--target {target}: not a class of this model.{did_you_mean(target, classes)} Classes: "
                      f"{', '.join(classes)} (or #k for the k-th detection by score)")


def boxes_only(net: nn.Module) -> nn.Module:
    """``net`` (a torchvision R-CNN) without its mask branch, sharing every weight: scoring needs boxes and
    scores, and Score-CAM scores hundreds of images. The copies get their own module tables, so that the
    model itself keeps its masks."""
    heads = copy.copy(net.roi_heads)
    heads._modules = dict(heads._modules)
    for name in ("mask_roi_pool", "mask_head", "mask_predictor"):
        if name in heads._modules:
            setattr(heads, name, None)
    out = copy.copy(net)
    out._modules = dict(net._modules)
    out.roi_heads = heads
    return out


def matched_score(model: nn.Module, boxes: torch.Tensor, labels: torch.Tensor, post: PostProcess
                  ) -> Callable[[torch.Tensor], torch.Tensor]:
    """``(B, C, h, w)`` float 0..1 -> ``(B, T)``: for each of the T detections (``boxes`` ``(T, 4)`` xyxy
    pixels, 1-based ``labels`` ``(T,)``), the highest score times box IoU (a constant for the gradient) among
    the same-class detections of each image that overlap it with IoU >= ``MATCH_IOU``; 0 (still in the graph)
    where none does."""
    net = boxes_only(model.net)

    def score(x: torch.Tensor) -> torch.Tensor:
        x = x.to(boxes.device)
        outputs = run_detector(net, [model.normalize(im) for im in x], post)
        rows = []
        for out in outputs:
            # IoU weighs the match, without gradient: the maps explain the class score, not the box's regression
            # (an overfit Mask R-CNN's Grad-CAM at encoder.layers.1: mean inside the objects / outside 2.0 -> 3.2)
            iou = box_iou(boxes, out["boxes"]).detach()  # (T, N)
            match = (labels[:, None] == out["labels"][None]) & (iou >= MATCH_IOU)
            value = torch.where(match, iou * out["scores"][None], torch.zeros_like(iou))
            best = value.max(1).values if value.shape[1] else value.new_zeros(len(boxes))
            # no match anywhere: 0, still a function of the network, so that backward() runs
            rows.append(best + 0.0 * (out["scores"].sum() + out["boxes"].sum()))
        return torch.stack(rows)

    return score

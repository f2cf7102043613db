"""Segmentation losses on logits ``(N, C, H, W)`` and masks ``(N, H, W)`` with IGNORE (255) pixels.

``ce`` (cross-entropy, optionally class-weighted), ``dice`` (soft Dice over the classes present in
the batch), ``focal`` (cross-entropy down-weighting easy pixels, gamma 2) and ``ce+dice``. One
logit channel is the binary head: binary cross-entropy (class weights become ``pos_weight``),
Dice on the foreground, and torchvision's sigmoid focal loss.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops import sigmoid_focal_loss

from cnnkit.data.masks import IGNORE
from cnnkit.errors import CnnkitError

LOSSES = ("ce", "dice", "focal", "ce+dice")
FOCAL_GAMMA = 2.0
DICE_SMOOTH = 1.0  # pixels; keeps the Dice ratio defined for tiny or empty classes


class SegmentationLoss(nn.Module):
    def __init__(self, kind: str = "ce", weights: Sequence[float] | None = None):
        super().__init__()
        if kind not in LOSSES:
            raise CnnkitError(f"--loss {kind}: choose one of {', '.join(LOSSES)} for segment")
        self.kind = kind
        self.register_buffer("weight", None if weights is None else torch.tensor(weights, dtype=torch.float32))

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        logits, target = logits.float(), target.long()
        binary = logits.shape[1] == 1
        weight = None if self.weight is None else self.weight.to(logits.device)
        loss = logits.new_zeros(())
        if self.kind in ("ce", "ce+dice"):
            loss = loss + (_bce(logits, target, weight) if binary else
                           F.cross_entropy(logits, target, weight=weight, ignore_index=IGNORE))
        if self.kind == "focal":
            loss = loss + (_binary_focal(logits, target) if binary else _focal(logits, target, weight))
        if self.kind in ("dice", "ce+dice"):
            loss = loss + dice_loss(logits, target)
        return loss


def _bce(logits: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None) -> torch.Tensor:
    valid = target != IGNORE
    pos_weight = None if weight is None else weight[1:2] / weight[0].clamp_min(1e-12)
    x, y = logits[:, 0][valid], target[valid].float()
    if x.numel() == 0:
        return logits.sum() * 0
    return F.binary_cross_entropy_with_logits(x, y, pos_weight=pos_weight)


def _binary_focal(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    valid = target != IGNORE
    if not valid.any():
        return logits.sum() * 0
    return sigmoid_focal_loss(logits[:, 0][valid], target[valid].float(), gamma=FOCAL_GAMMA, reduction="mean")


def _focal(logits: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None) -> torch.Tensor:
    """Multi-class focal loss: mean over labelled pixels of ``w_t (1 - p_t)^gamma (-log p_t)``."""
    valid = target != IGNORE
    if not valid.any():
        return logits.sum() * 0
    safe = target.masked_fill(~valid, 0)
    log_p = F.log_softmax(logits, 1).gather(1, safe[:, None])[:, 0]
    focal = -((1 - log_p.exp()) ** FOCAL_GAMMA) * log_p
    if weight is not None:
        focal = focal * weight[safe]
    return focal[valid].mean()


def dice_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """1 - mean soft Dice over the classes present in ``target`` (the foreground for a binary head)."""
    valid = (target != IGNORE).unsqueeze(1).float()
    safe = target.masked_fill(target == IGNORE, 0)
    if logits.shape[1] == 1:
        probs, onehot = torch.sigmoid(logits), safe[:, None].float()
    else:
        probs = logits.softmax(1)
        onehot = F.one_hot(safe, logits.shape[1]).permute(0, 3, 1, 2).float()
    probs, onehot = probs * valid, onehot * valid
    dims = (0, 2, 3)
    inter = (probs * onehot).sum(dims)
    cardinality = probs.sum(dims) + onehot.sum(dims)
    dice = (2 * inter + DICE_SMOOTH) / (cardinality + DICE_SMOOTH)
    present = onehot.sum(dims) > 0
    if not present.any():
        return logits.sum() * 0
    return 1 - dice[present].mean()

"""What a run's figures say about its health: an epoch that is not finite, losses that explode, a classifier at
chance. Said once, in one line, instead of a run that goes on to its end with no word."""

from __future__ import annotations

import math
from typing import Any

import torch

from cnnkit.engine.logger import RunLogger
from cnnkit.log import LOGGER
from cnnkit.meta import ModelMeta

KEPT = ("lr", "time_s")  # what a non-finite epoch still reports as it was


def finite_epoch(row: dict[str, Any], monitor: str) -> bool:
    """An epoch whose losses or monitored metric are NaN or infinite is never kept as best.pt: its top-1 may
    look fine while its weights predict NaN. (Other figures may be undefined on their own: the spread of a
    single validation image.)"""
    bad = [k for k in ("train_loss", "val_loss", monitor)
           if isinstance(row.get(k), float) and not math.isfinite(row[k])]
    bad = list(dict.fromkeys(bad))
    if bad:  # its metrics are argmax of NaN (top-1 0.25 for class 0 everywhere): not figures to log
        row.update({k: float("nan") for k, v in row.items() if isinstance(v, float) and k not in KEPT
                    and not k.startswith("train_") and not k.endswith("img_s")})
        LOGGER.warning("warning: epoch %s: %s not finite; this epoch is not kept as best.pt (lower --lr, or use "
                       "--grad-clip)", row["epoch"], ", ".join(f"{k}={row[k]}" for k in bad))
    return not bad


EXPLODED_LOSS = 100.0  # no task's loss starts near this (cross-entropy over 1,000 classes starts at 6.9)


def health_warnings(row: dict[str, Any], meta: ModelMeta, warned: set[str], log: RunLogger) -> set[str]:
    """Say once when the losses explode or a classifier stays at chance: such a run otherwise ran to its end
    with no word (72x64 images at 224 px: train loss 9113, val 137353, top-1 at chance for 8 epochs)."""
    losses = {k: row[k] for k in ("train_loss", "val_loss") if isinstance(row.get(k), float)}
    if "explode" not in warned and any(v > EXPLODED_LOSS for v in losses.values()):
        warned = warned | {"explode"}
        log.warning(f"warning: the losses are exploding ({', '.join(f'{k}={v:.4g}' for k, v in losses.items())} at "
                    f"epoch {row['epoch']}); lower --lr, use --grad-clip 1, or check --imgsz against the images")
    classes = meta.num_classes
    top1 = row.get("top1")
    if ("chance" not in warned and isinstance(top1, float) and classes > 1 and row["epoch"] >= 3
            and top1 <= 1 / classes + 0.02):
        warned = warned | {"chance"}
        log.warning(f"warning: top-1 is still at chance ({top1:.2%} for {classes} classes) after epoch "
                    f"{row['epoch']}; check the labels, lower --lr, or train longer")
    return warned


def computes_finite(model: torch.nn.Module, side: int = 0) -> bool:
    """Whether ``model`` (an ``ImageModel``) computes finite values on a random image: a detector has no
    validation loss, and its NaN scores fall under every threshold, so a diverged epoch scored box AP 0 and
    was kept as best.pt. Its backbone is probed where it has one."""
    param = next(model.parameters())
    side = side or int(model.meta.imgsz or 64)  # the training side: a model of a fixed input size takes it
    # its own generator: the probe must not move the training's random state (resume repeats it exactly)
    x = torch.rand(1, model.meta.in_chans, side, side, generator=torch.Generator().manual_seed(0)).to(param.device)
    backbone = getattr(model.net, "backbone", None)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            out = backbone(model.normalize(x)) if isinstance(backbone, torch.nn.Module) else model(x)
    except RuntimeError:  # a model this probe cannot run (a shape it refuses) is not judged by it
        return True
    finally:
        model.train(was_training)
    tensors = list(out.values()) if isinstance(out, dict) else [out] if isinstance(out, torch.Tensor) else []
    return all(bool(torch.isfinite(t).all()) for t in tensors if t.is_floating_point())


def finite_model(model: torch.nn.Module, epoch: int) -> bool:
    """``computes_finite``, said in a warning when not."""
    if computes_finite(model):
        return True
    LOGGER.warning("warning: epoch %s: the model computes NaN or infinite values; not kept as best.pt (lower --lr, "
                   "or use --grad-clip)", epoch)
    return False

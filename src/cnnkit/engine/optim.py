"""Optimiser, per-step learning-rate schedule with warm-up, and EMA of weights."""

from __future__ import annotations

import math
from collections.abc import Callable, Collection

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from cnnkit.config import TrainConfig


def build_optimizer(model: nn.Module, cfg: TrainConfig, fixed: Collection[nn.Parameter] = (),
                    fixed_steps: int = 0) -> torch.optim.Optimizer:
    """SGD (Nesterov) or AdamW; no weight decay on biases and normalisation parameters. ``fixed``: parameters
    (a pretrained encoder's) whose groups carry ``fixed_steps``, the steps ``build_scheduler`` holds them at
    learning rate 0 (their gradients are still computed, so DDP sees the same graph throughout)."""
    held = {id(p) for p in fixed}
    groups = []
    for steps in ((0, fixed_steps) if held and fixed_steps else (0,)):
        params = [p for p in model.parameters() if p.requires_grad and (id(p) in held) == (steps > 0)]
        groups += [{"params": [p for p in params if p.ndim > 1], "weight_decay": cfg.weight_decay},
                   {"params": [p for p in params if p.ndim <= 1], "weight_decay": 0.0}]
        groups[-2]["fixed_steps"] = groups[-1]["fixed_steps"] = steps
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=cfg.lr, betas=(cfg.momentum, 0.999))
    return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.momentum > 0)


def lr_factor(step: int, total: int, warmup: int, shape: str) -> float:
    """Multiplier of the peak learning rate at optimiser step ``step`` of ``total``."""
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    if shape == "cosine":
        return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
    if shape == "onecycle":  # linear decay to zero, as in airbench and fast.ai's one-cycle
        return max(0.0, 1.0 - progress)
    return 1.0


MAX_WARMUP_SHARE = 0.25  # of all steps: a one-epoch warm-up in a one-epoch run never let the lr decay


def build_scheduler(optimizer: torch.optim.Optimizer, cfg: TrainConfig, steps_per_epoch: int):
    """Linear warm-up over ``cfg.warmup_epochs`` (at most MAX_WARMUP_SHARE of the run), then ``cfg.schedule``."""
    total = cfg.epochs * steps_per_epoch
    warmup = min(int(total * MAX_WARMUP_SHARE), int(round(cfg.warmup_epochs * steps_per_epoch)))
    def factor(fixed_steps: int) -> Callable[[int], float]:
        return lambda s: 0.0 if s < fixed_steps else lr_factor(s, total, warmup, cfg.schedule)

    factors = [factor(group.get("fixed_steps", 0)) for group in optimizer.param_groups]
    return torch.optim.lr_scheduler.LambdaLR(optimizer, factors)


def build_ema(model: nn.Module, decay: float) -> AveragedModel | None:
    """EMA of weights and buffers (BN statistics too), updated after every optimiser step."""
    if decay <= 0:
        return None
    return AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)

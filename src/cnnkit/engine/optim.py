"""Optimiser, per-step learning-rate schedule with warm-up, and EMA of weights."""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from cnnkit.config import TrainConfig


def build_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """SGD (Nesterov) or AdamW; no weight decay on biases and normalisation parameters."""
    decay: list[nn.Parameter] = []
    no_decay: list[nn.Parameter] = []
    for p in model.parameters():
        if p.requires_grad:
            (decay if p.ndim > 1 else no_decay).append(p)
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
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
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(s, total, warmup, cfg.schedule))


def build_ema(model: nn.Module, decay: float) -> AveragedModel | None:
    """EMA of weights and buffers (BN statistics too), updated after every optimiser step."""
    if decay <= 0:
        return None
    return AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)

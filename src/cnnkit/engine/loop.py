"""The two loops every task shares: ``train_one_epoch`` and ``evaluate``. Read them top to bottom."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sized
from contextlib import nullcontext
from typing import Any, cast

import torch
from torch import nn

from cnnkit.engine.task import Metrics
from cnnkit.errors import CnnkitError

PROGRESS_S = 0.5  # s between progress reports (the bar, the NaN check): a sync with the device each time


def to_device(obj: Any, device: torch.device) -> Any:
    """Move tensors, and tensors inside lists, tuples and dicts, to ``device``."""
    if isinstance(obj, torch.Tensor):
        return obj.to(device, non_blocking=True)
    if isinstance(obj, (list, tuple)):
        return type(obj)(to_device(o, device) for o in obj)
    if isinstance(obj, dict):
        return {k: to_device(v, device) for k, v in obj.items()}
    return obj


def autocast(device: torch.device, amp: bool):
    """bfloat16 autocast on CPU, float16 on CUDA; a no-op when ``amp`` is off."""
    if not amp:
        return nullcontext()
    return torch.autocast(device.type, dtype=torch.float16 if device.type == "cuda" else torch.bfloat16)


def train_one_epoch(model: nn.Module, loader: Iterable, loss_fn: Callable, optimizer: torch.optim.Optimizer,
                    scheduler: torch.optim.lr_scheduler.LRScheduler, *, device: torch.device,
                    scaler: torch.amp.GradScaler, ema: torch.optim.swa_utils.AveragedModel | None = None,
                    amp: bool = False, grad_clip: float = 0.0, channels_last: bool = False,
                    batch_transform: Callable | None = None, forward: Callable | None = None,
                    progress: Callable[[dict[str, float]], None] | None = None,
                    done: tuple[int, float, int] = (0, 0.0, 0),
                    on_step: Callable[[int, torch.Tensor, int], None] | None = None) -> dict[str, float]:
    """One pass over ``loader``; returns mean training loss and images per second.

    ``images`` is a batch tensor or a list of image tensors. ``batch_transform(images, targets)``
    augments each batch on the device before the forward pass; ``forward(model, images, targets)``
    replaces ``model(images)`` for models that compute their losses from the targets (detection).
    A resumed epoch passes ``done`` (steps, loss sum, images) of its first part, and a loader of the
    rest; ``on_step(steps, loss_sum, images)`` runs after each step (mid-epoch checkpoints).
    """
    model.train()
    first, carried_loss, seen = done
    loss_sum = torch.full((), carried_loss, device=device)
    start, counted = time.perf_counter(), seen
    reported = start - PROGRESS_S  # the first step reports at once
    for step, (images, targets) in enumerate(loader, start=first):
        images, targets = to_device(images, device), to_device(targets, device)
        if batch_transform is not None:
            images, targets = batch_transform(images, targets)
        if channels_last and isinstance(images, torch.Tensor):
            images = images.contiguous(memory_format=torch.channels_last)

        with autocast(device, amp):
            outputs = forward(model, images, targets) if forward is not None else model(images)
            loss = loss_fn(outputs, targets)

        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        if grad_clip > 0:
            scaler.unscale_(optimizer)  # clip the true gradients, not the scaled ones
            torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        scaler.step(optimizer)
        scaler.update()
        scheduler.step()
        if ema is not None:
            ema.update_parameters(model)

        n = len(images)
        loss_sum += loss.detach().float() * n
        seen += n
        now = time.perf_counter()
        if progress is not None and (now - reported >= PROGRESS_S or step == first + len(cast(Sized, loader)) - 1):
            reported = now  # by time, not steps: at 13 s a step, every 10th step froze the bar for two minutes
            mean_loss = float(loss_sum) / seen
            if not torch.isfinite(torch.tensor(mean_loss)):
                raise CnnkitError(f"training loss became {mean_loss} at step {step}; lower --lr or use --grad-clip")
            progress({"loss": mean_loss, "img/s": (seen - counted) / (time.perf_counter() - start), "step": step + 1})
        if on_step is not None:
            on_step(step + 1, loss_sum, seen)
    elapsed = time.perf_counter() - start
    return {"train_loss": float(loss_sum) / max(1, seen), "train_img_s": (seen - counted) / max(elapsed, 1e-9),
            "train_s": elapsed}


@torch.no_grad()
def evaluate(model: nn.Module, loader: Iterable, metrics: Metrics, *, device: torch.device,
             loss_fn: Callable | None = None, forward: Callable | None = None, amp: bool = False,
             channels_last: bool = False) -> dict[str, float]:
    """Stream ``loader`` through ``model`` into ``metrics``; returns the metrics and the mean loss.

    ``forward(model, images)`` replaces ``model(images)`` (test-time augmentation, for instance).
    A ``loss_fn`` that returns None (detection models give no losses in eval mode) adds no val_loss.
    """
    model.eval()
    metrics.reset()
    loss_sum = torch.zeros((), device=device)
    seen, losses_seen, start = 0, 0, time.perf_counter()
    for images, targets in loader:
        images = to_device(images, device)
        if channels_last and isinstance(images, torch.Tensor):
            images = images.contiguous(memory_format=torch.channels_last)
        targets = to_device(targets, device)

        with autocast(device, amp):
            outputs = forward(model, images) if forward is not None else model(images)
            loss = loss_fn(outputs, targets) if loss_fn is not None else None
        if loss is not None:
            loss_sum += loss.float() * len(images)
            losses_seen += len(images)

        metrics.update(outputs, targets)
        seen += len(images)
    results = metrics.compute()
    if losses_seen:
        results["val_loss"] = float(loss_sum) / losses_seen
    results["val_img_s"] = seen / max(time.perf_counter() - start, 1e-9)
    return results

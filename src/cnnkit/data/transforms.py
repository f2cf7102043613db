"""Augmentation presets on torchvision.transforms.v2, for uint8 ``(C, H, W)`` tensors."""

from __future__ import annotations

import torch
from torchvision.transforms import v2

from cnnkit.errors import CnnkitError

PRESETS = ("none", "light", "standard", "strong")


def build_train_transform(preset: str, imgsz: int, channels: int) -> v2.Transform | None:
    """``light``: pad-and-crop + flip (small images); ``standard``: scale crop + flip + colour;
    ``strong``: standard + TrivialAugment + random erasing. Returns None for ``none``."""
    if preset == "none":
        return None
    if preset == "light":
        return v2.Compose([v2.RandomCrop(imgsz, padding=max(1, imgsz // 8), padding_mode="reflect"),
                           v2.RandomHorizontalFlip()])
    colour = v2.ColorJitter(0.3, 0.3, 0.3 if channels == 3 else 0.0)
    if preset == "standard":
        return v2.Compose([v2.RandomResizedCrop(imgsz, scale=(0.35, 1.0), antialias=True),
                           v2.RandomHorizontalFlip(), colour])
    if preset == "strong":
        return v2.Compose([v2.RandomResizedCrop(imgsz, scale=(0.25, 1.0), antialias=True), v2.RandomHorizontalFlip(),
                           v2.TrivialAugmentWide(), v2.RandomErasing(p=0.25, value=0)])
    raise CnnkitError(f"unknown augmentation preset '{preset}'; choose one of {', '.join(PRESETS)}")


def channel_stats(images: torch.Tensor, chunk: int = 4096) -> tuple[list[float], list[float]]:
    """Per-channel mean and std of 0..1 pixels over ``images`` ``(N, C, H, W)`` uint8."""
    total = torch.zeros(images.shape[1], dtype=torch.float64)
    total_sq = torch.zeros_like(total)
    for start in range(0, len(images), chunk):
        x = images[start:start + chunk].to(torch.float64) / 255.0
        total += x.sum((0, 2, 3))
        total_sq += (x * x).sum((0, 2, 3))
    count = images.shape[0] * images.shape[2] * images.shape[3]
    mean = total / count
    std = (total_sq / count - mean * mean).clamp_min(1e-12).sqrt()
    return [round(float(m), 6) for m in mean], [round(float(s), 6) for s in std]

"""Augmentation presets on torchvision.transforms.v2, for uint8 ``(C, H, W)`` tensors."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torchvision import tv_tensors
from torchvision.transforms import v2

from cnnkit.errors import CnnkitError

PRESETS = ("none", "light", "standard", "strong")


class BatchFlipTranslate:
    """Random horizontal flip and translation by up to ``pad`` pixels (reflect padding), drawn per
    image but applied to a whole batch ``(N, C, H, W)`` in one gather, on whatever device it is on.

    Per-image torchvision transforms cost about a millisecond each on small images, more than the
    training step itself for a small CNN; this costs microseconds per image.
    """

    def __init__(self, pad: int, flip: bool = True):
        self.pad, self.flip = pad, flip

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        n, _, h, w = images.shape
        p, dev = self.pad, images.device
        padded = torch.nn.functional.pad(images.float(), (p, p, p, p), mode="reflect")
        rows = torch.randint(0, 2 * p + 1, (n, 1), device=dev) + torch.arange(h, device=dev)
        cols = torch.randint(0, 2 * p + 1, (n, 1), device=dev) + torch.arange(w, device=dev)
        if self.flip:
            cols = torch.where(torch.rand(n, 1, device=dev) < 0.5, cols.flip(1), cols)
        out = padded[torch.arange(n, device=dev)[:, None, None], :, rows[:, :, None], cols[:, None, :]]
        return out.permute(0, 3, 1, 2).round().to(images.dtype)  # gather gives (N, H, W, C)


class BatchRelight:
    """Random lighting per image of a batch ``(N, C, H, W)`` (uint8 or 0..1 float) -> 0..1 float: a smooth
    multiplicative illumination field, ``exp(s * r)`` with ``r`` a linear ramp from -1 to 1 in a random
    direction and ``s`` up to ``strength``, then a random gamma (log-normal, sigma 0.3). Light from one side
    darkens the other, as a face lit from the side; recognition learns that it is the same face."""

    def __init__(self, strength: float):
        self.strength = strength

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        n, _, h, w = images.shape
        dev = images.device
        x = images.float() / 255.0 if images.dtype == torch.uint8 else images.float()
        angle = torch.rand(n, 1, 1, device=dev) * (2 * math.pi)
        ys = torch.linspace(-1, 1, h, device=dev)[:, None]
        xs = torch.linspace(-1, 1, w, device=dev)[None, :]
        ramp = (torch.cos(angle) * xs + torch.sin(angle) * ys) / math.sqrt(2)
        field = torch.exp(torch.rand(n, 1, 1, device=dev) * self.strength * ramp)[:, None]
        gamma = torch.exp(0.3 * torch.randn(n, 1, 1, 1, device=dev))
        return (x * field).clamp(1e-6, 1.0) ** gamma


def resize_mask(mask: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """Masks ``(..., H, W)`` of any dtype -> ``size`` ``(h, w)`` by nearest-exact (torchvision's
    InterpolationMode.NEAREST_EXACT): each output pixel takes the source pixel under its centre, as the
    antialiased bilinear resize of the image does. torchvision's default nearest takes the pixel under
    its top-left corner, which set masks up to half a pixel down and right of their images.

    An index gather rather than ``resize(..., NEAREST_EXACT)``: it takes class ids of every dtype
    (int64, int32, bool; interpolate takes uint8 alone) and every torchvision cnnkit supports."""
    h, w = mask.shape[-2:]
    rows, cols = (_exact_source(n_in, n_out) for n_in, n_out in ((h, size[0]), (w, size[1])))
    return mask[..., rows[:, None], cols[None, :]]


def _exact_source(n_in: int, n_out: int) -> torch.Tensor:
    """The source index of each output index, in float32 as PyTorch's kernel computes it (so that ties
    fall as in ``resize(..., NEAREST_EXACT)``)."""
    scale = torch.tensor(n_in / n_out, dtype=torch.float32)
    return ((torch.arange(n_out, dtype=torch.float32) + 0.5) * scale).floor().long().clamp_(0, n_in - 1)


def build_train_transform(preset: str, imgsz: int, channels: int) -> v2.Transform | None:
    """Per-image transforms: ``standard``: scale crop + flip + colour; ``strong``: standard +
    TrivialAugment + random erasing. None for ``none`` and ``light`` (see build_batch_transform)."""
    if preset in ("none", "light"):
        return None
    colour = v2.ColorJitter(0.3, 0.3, 0.3 if channels == 3 else 0.0)
    if preset == "standard":
        return v2.Compose([v2.RandomResizedCrop(imgsz, scale=(0.35, 1.0), antialias=True),
                           v2.RandomHorizontalFlip(), colour])
    if preset == "strong":
        return v2.Compose([v2.RandomResizedCrop(imgsz, scale=(0.25, 1.0), antialias=True), v2.RandomHorizontalFlip(),
                           v2.TrivialAugmentWide(), v2.RandomErasing(p=0.25, value=0)])
    raise CnnkitError(f"unknown augmentation preset '{preset}'; choose one of {', '.join(PRESETS)}")


def build_batch_transform(preset: str, imgsz: int) -> BatchFlipTranslate | None:
    """Whole-batch augmentation: ``light`` is flip + translation by up to imgsz/8 pixels."""
    return BatchFlipTranslate(max(1, imgsz // 8)) if preset == "light" else None


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


# preset -> (scale range, colour jitter strength); flip and crop always
SEGMENT_PRESETS = {"none": (None, 0.0), "light": ((1.0, 1.5), 0.0), "standard": ((0.5, 2.0), 0.2),
                   "strong": ((0.5, 2.0), 0.4)}


class SegmentTransform:
    """Joint image and mask augmentation with transforms.v2 (masks are resampled nearest-exact, see
    ``resize_mask``): random scale, random crop to ``crop`` (padding with 0 / the ignore id), horizontal flip,
    colour jitter. ``none`` only crops or pads to ``crop``, so that batches stack."""

    def __init__(self, preset: str, crop: tuple[int, int], ignore: int = 255, channels: int = 3):
        if preset not in SEGMENT_PRESETS:
            raise CnnkitError(f"unknown augmentation preset '{preset}'; choose one of {', '.join(PRESETS)}")
        self.scale, jitter = SEGMENT_PRESETS[preset]
        steps: list[v2.Transform] = [v2.RandomCrop(crop, pad_if_needed=True,
                                                   fill={tv_tensors.Image: 0, tv_tensors.Mask: ignore})]
        if preset != "none":
            steps.append(v2.RandomHorizontalFlip())
        if jitter:
            steps.append(v2.ColorJitter(jitter, jitter, jitter if channels == 3 else 0.0))
        self.steps = v2.Compose(steps)

    def __call__(self, image: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``image`` (C, H, W) uint8 and ``mask`` (H, W) class ids -> both cropped to ``crop``."""
        image, mask = tv_tensors.Image(image), tv_tensors.Mask(mask)
        if self.scale is not None:
            s = float(torch.empty(()).uniform_(*self.scale))
            size = [max(1, round(image.shape[-2] * s)), max(1, round(image.shape[-1] * s))]
            image = v2.functional.resize(image, size, antialias=True)
            mask = tv_tensors.Mask(resize_mask(mask.as_subclass(torch.Tensor), size))
        image, mask = self.steps(image, mask)
        return image.as_subclass(torch.Tensor), mask.as_subclass(torch.Tensor)

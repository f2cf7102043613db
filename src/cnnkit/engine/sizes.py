"""Whether the training size suits the model and the machine, checked once the model is built and before
the first step: a size below the model's downsampling, or one whose batch cannot fit in memory (which
the kernel's out-of-memory killer ends without a word), stops in one line naming --imgsz."""

from __future__ import annotations

import math
from typing import Any

import torch

from cnnkit.config import TrainConfig
from cnnkit.device import available_memory
from cnnkit.errors import CnnkitError

PROBE = 64  # px: the side of the probe image whose layer outputs give the activation bytes per pixel
# a training step's peak memory, measured on CPU for ResNet-18, U-Net, FastNet, BasicCNN and MobileNetV3
# (batch 8, 256 px), was 1.0-1.3x the sum of the forward's layer outputs; the rest is margin
ACTIVATION_FACTOR = 1.5
FILL = 0.8  # the share of the available memory a suggested size may plan to take
# bytes per input pixel that training any CNN takes at the least, before the model is known: its first
# layer's outputs alone (8 channels of float32 at full resolution, and their activation) and the input
FLOOR_BYTES = 64


class SmallerThanStride(CnnkitError):
    """The training side is below the model's total stride; ``minimum`` is the smallest side it takes."""

    def __init__(self, message: str, minimum: int):
        super().__init__(message)
        self.minimum = minimum


def check_size_floor(cfg: TrainConfig, batch: int, device: torch.device) -> None:
    """Before any data is read at ``cfg.imgsz``: refuse a size whose batch cannot fit whatever the model
    (at ``FLOOR_BYTES`` a pixel). Reading and decoding at such a size is what the kernel killed."""
    side, available = cfg.imgsz, available_memory(device)
    need = batch * side ** 2 * FLOOR_BYTES
    if not side or not available or need <= available:
        return
    fits = math.isqrt(int(FILL * available) // (batch * FLOOR_BYTES))
    raise CnnkitError(f"--imgsz {side}: a training batch of {batch} images of {side} px needs more than "
                      f"{gigabytes(need)} of memory whatever the model, and {where(device)} has {gigabytes(available)} "
                      f"available; use --imgsz {fits} or less, or a smaller --batch")


def check_input_size(model: torch.nn.Module, cfg: TrainConfig, meta: dict[str, Any], batch: int,
                     device: torch.device) -> None:
    """Refuse a training side below the model's total stride (``SmallerThanStride``), one its layers
    cannot take, or one whose training batch of ``batch`` images needs more memory than ``device`` has."""
    side = int(meta.get("imgsz") or 0)
    if not side:
        return
    stride = int(model.total_stride()) if hasattr(model, "total_stride") else 1
    # half the stride still leaves the deepest features a (padded) pixel: U-Nets train on 24 px crops at stride 32
    if side * 2 < stride:
        raise SmallerThanStride(f"--imgsz {side}: below half of {cfg.model}'s total stride of {stride} px (its "
                                f"downsampling shrinks each side {stride}x, to less than half a pixel); use --imgsz "
                                f"{stride} or more", stride)
    if side < PROBE:
        _try_forward(model, cfg, meta, side)
    check_memory(model, cfg, meta, batch, device, stride)


def _try_forward(model: torch.nn.Module, cfg: TrainConfig, meta: dict[str, Any], side: int) -> None:
    """A small size is tried on the model: one that pools away to nothing fails here, not after the data."""
    model.eval()
    try:
        with torch.no_grad():
            model(torch.zeros(1, meta["in_chans"], side, side))
    except RuntimeError as e:
        raise CnnkitError(f"--imgsz {side}: too small for {cfg.model} ({str(e).splitlines()[0][:120]}); "
                          "use a larger --imgsz such as 32") from None
    finally:
        model.train()


def check_memory(model: torch.nn.Module, cfg: TrainConfig, meta: dict[str, Any], batch: int, device: torch.device,
                 stride: int = 1) -> None:
    """Refuse a size whose training batch needs more memory than ``device`` has available, naming the
    largest side (a multiple of ``stride``) that fits."""
    available = available_memory(device)
    if not available:
        return  # this system does not say: train, as before
    side = int(meta["imgsz"])
    crop = meta.get("crop") or (side, side)
    aspect = crop[0] * crop[1] / side ** 2  # a non-square crop has fewer pixels than its longer side squared
    per_pixel, per_image = pixel_bytes(model, meta["in_chans"], stride, amp=cfg.amp and device.type == "cuda")
    per_pixel *= batch * aspect
    fixed = 4 * sum(p.numel() * p.element_size() for p in model.parameters())  # weights, grads, 2 optimiser states
    fixed += batch * per_image
    need = fixed + per_pixel * side ** 2
    if need <= available:
        return
    fits = math.isqrt(max(0, int((FILL * available - fixed) / per_pixel))) // stride * stride
    advice = (f"use --imgsz {fits} or less, or a smaller --batch" if fits >= stride
              else f"even --imgsz {stride} does not fit; use a smaller --batch or a smaller model")
    raise CnnkitError(f"--imgsz {side}: a training batch of {batch} images of {side} px needs about "
                      f"{gigabytes(need)} of memory and {where(device)} has {gigabytes(available)} available; {advice}")


def pixel_bytes(model: torch.nn.Module, in_chans: int, stride: int = 1, amp: bool = False) -> tuple[float, float]:
    """(bytes per input pixel, bytes per image) a training step costs: the forward's layer outputs (kept
    for the backward pass), with margin, plus the input itself (uint8 and float32). Measured on probe
    images of two sides: what grows with the area is per pixel, the rest (a detector's region heads, a
    fixed number of proposals of a fixed size whatever the image) per image."""
    side = max(PROBE, stride)
    small, large = _activation_bytes(model, in_chans, side), _activation_bytes(model, in_chans, 2 * side)
    per_pixel = max(0.0, (large - small) / (3 * side ** 2))  # (2s)^2 - s^2 = 3 s^2
    per_image = max(0.0, small - per_pixel * side ** 2)
    scale = ACTIVATION_FACTOR * (0.6 if amp else 1.0)  # float16 halves most of them
    return per_pixel * scale + 5 * in_chans, per_image * scale


def _activation_bytes(model: torch.nn.Module, in_chans: int, side: int) -> int:
    """The bytes of every leaf module's outputs in one eval forward of a zero image of ``side`` px."""
    total = 0

    def count(_module: torch.nn.Module, _inputs: Any, output: Any) -> None:
        nonlocal total
        for t in output if isinstance(output, (tuple, list)) else (output,):
            if isinstance(t, torch.Tensor):
                total += t.numel() * t.element_size()

    leaves = [m for m in model.modules() if not any(True for _ in m.children())]
    hooks = [m.register_forward_hook(count) for m in leaves]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(torch.zeros(1, in_chans, side, side, device=next(model.parameters()).device))
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    return total


def where(device: torch.device) -> str:
    return "this GPU" if device.type == "cuda" else "this machine"


def gigabytes(n: float) -> str:
    return f"{n / 1e9:.1f} GB" if n < 1e12 else f"{n / 1e12:.1f} TB"

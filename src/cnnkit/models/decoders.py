"""Decoders that turn an encoder's feature list into a dense map: U-Net, SegNet, FCN and DeepLabV3+.

Upsampling is ``"transpose"`` (transposed convolution, the classic design and the default) or
``"bilinear"`` (bilinear interpolation followed by a convolution). Each decoder states the
stride of its output (``out_stride``) and its width (``out_channels``); FCN ends in class scores
itself (``out_channels`` is then the number of classes).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from cnnkit.errors import CnnkitError
from cnnkit.models.basic_cnn import conv_bn_relu

UPSAMPLE_MODES = ("transpose", "bilinear")


def check_upsample(mode: str) -> None:
    if mode not in UPSAMPLE_MODES:
        raise CnnkitError(f"upsample must be one of {', '.join(UPSAMPLE_MODES)}, got '{mode}'")


def bilinear_kernel(channels: int, size: int) -> torch.Tensor:
    """``(channels, 1, size, size)`` weights that make a transposed convolution bilinear interpolation."""
    factor = (size + 1) // 2
    centre = factor - 1 if size % 2 == 1 else factor - 0.5
    ramp = 1 - (torch.arange(size, dtype=torch.float32) - centre).abs() / factor
    return (ramp[:, None] * ramp[None, :]).expand(channels, 1, size, size).clone()


class ScoreUpsample(nn.Module):
    """Upsample ``(N, C, H, W)`` by an integer ``factor``: a per-channel transposed convolution that
    starts as exact bilinear interpolation and is then learned (FCN's "deconvolution"), or fixed bilinear."""

    def __init__(self, channels: int, factor: int, mode: str = "transpose"):
        super().__init__()
        check_upsample(mode)
        self.factor, self.mode = factor, mode
        if mode == "transpose" and factor > 1:
            self.deconv = nn.ConvTranspose2d(channels, channels, 2 * factor, stride=factor, padding=factor // 2,
                                             groups=channels, bias=False)
            with torch.no_grad():
                self.deconv.weight.copy_(bilinear_kernel(channels, 2 * factor))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.factor == 1:
            return x
        if self.mode == "transpose":
            return self.deconv(x)
        return F.interpolate(x, scale_factor=self.factor, mode="bilinear", align_corners=False)


def up2(cin: int, cout: int, mode: str) -> nn.Module:
    """Double the resolution and map ``cin`` to ``cout`` channels (U-Net's up-convolution)."""
    check_upsample(mode)
    if mode == "transpose":
        return nn.ConvTranspose2d(cin, cout, 2, stride=2)
    return nn.Sequential(nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False), nn.Conv2d(cin, cout, 1))


class UNetDecoder(nn.Module):
    """U-Net: at each scale, upsample, concatenate the encoder's skip feature, two 3x3 conv-BN-ReLU.

    Input: features at strides 2..32; output ``(N, decoder_channels[-1], H, W)`` at stride 1.
    """

    def __init__(self, encoder_channels: Sequence[int], decoder_channels: Sequence[int] = (256, 128, 64, 32, 16),
                 upsample: str = "transpose"):
        super().__init__()
        skips = list(encoder_channels[:-1])[::-1]
        if len(decoder_channels) != len(encoder_channels):
            raise CnnkitError(f"unet: decoder_channels needs {len(encoder_channels)} widths, got {decoder_channels}")
        self.ups, self.blocks = nn.ModuleList(), nn.ModuleList()
        cin = encoder_channels[-1]
        for i, cout in enumerate(decoder_channels):
            skip = skips[i] if i < len(skips) else 0
            self.ups.append(up2(cin, cout, upsample))
            self.blocks.append(nn.Sequential(conv_bn_relu(cout + skip, cout), conv_bn_relu(cout, cout)))
            cin = cout
        self.out_channels, self.out_stride = cin, 1

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        skips = features[:-1][::-1]
        x = features[-1]
        for i, (up, block) in enumerate(zip(self.ups, self.blocks)):
            x = up(x)
            if i < len(skips):
                x = torch.cat([x, skips[i]], 1)
            x = block(x)
        return x


class SegNetDecoder(nn.Module):
    """SegNet: unpool with the encoder's max-pooling indices (no learned upsampling), then convolve;
    the decoder mirrors the encoder's stages. Output ``(N, widths[0], H, W)`` at stride 1."""

    needs_indices = True

    def __init__(self, widths: Sequence[int], convs: Sequence[int]):
        super().__init__()
        self.stages = nn.ModuleList()
        for i in reversed(range(len(widths))):
            cout = widths[max(i - 1, 0)]
            layers = [conv_bn_relu(widths[i], widths[i]) for _ in range(convs[i] - 1)]
            self.stages.append(nn.Sequential(*layers, conv_bn_relu(widths[i], cout)))
        self.out_channels, self.out_stride = widths[0], 1

    def forward(self, features: list[torch.Tensor], indices: list[torch.Tensor], sizes: list) -> torch.Tensor:
        x = features[-1]
        for stage, idx, size in zip(self.stages, indices[::-1], sizes[::-1]):
            x = stage(unpool(x, idx, size))
        return x


def unpool(x: torch.Tensor, indices: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """Max-unpooling: each value of ``x`` ``(N, C, h, w)`` back at its pooled position ``indices`` (flat,
    per channel, as ``MaxPool2d(return_indices=True)`` gives them) in a zero map of ``size`` (..., H, W).
    The same as ``F.max_unpool2d``, written as a scatter because that op does not export (its output-size
    check needs Python booleans, which ONNX and TorchScript tracing make tensors)."""
    n, c = x.shape[:2]
    height, width = size[-2], size[-1]
    out = x.new_zeros((n, c, height * width))
    return out.scatter(2, indices.flatten(2), x.flatten(2)).view(n, c, height, width)


class FCNDecoder(nn.Module):
    """FCN-32s/16s/8s: class scores from the deepest features, upsampled by transposed convolution and
    fused with scores from the stride-16 (16s) and stride-8 (8s) features. Output: logits at stride 1."""

    def __init__(self, encoder_channels: Sequence[int], num_classes: int, variant: int = 8,
                 upsample: str = "transpose", width: int = 512, dropout: float = 0.1):
        super().__init__()
        if variant not in (32, 16, 8):
            raise CnnkitError(f"fcn: variant must be 32, 16 or 8, got {variant}")
        self.variant = variant
        self.neck = nn.Sequential(conv_bn_relu(encoder_channels[-1], width), nn.Dropout2d(dropout))
        self.score32 = nn.Conv2d(width, num_classes, 1)
        self.score16 = nn.Conv2d(encoder_channels[-2], num_classes, 1) if variant <= 16 else None
        self.score8 = nn.Conv2d(encoder_channels[-3], num_classes, 1) if variant == 8 else None
        self.up2a = ScoreUpsample(num_classes, 2, upsample) if variant <= 16 else None
        self.up2b = ScoreUpsample(num_classes, 2, upsample) if variant == 8 else None
        self.final = ScoreUpsample(num_classes, variant, upsample)
        self.out_channels, self.out_stride = num_classes, 1

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        score = self.score32(self.neck(features[-1]))
        if self.score16 is not None:
            assert self.up2a is not None  # set with score16 (variant 16 or 8)
            score = self.up2a(score) + self.score16(features[-2])
        if self.score8 is not None:
            assert self.up2b is not None  # set with score8 (variant 8)
            score = self.up2b(score) + self.score8(features[-3])
        return self.final(score)


class ASPP(nn.Module):
    """Atrous spatial pyramid pooling: 1x1, three dilated 3x3 and image-level branches, fused by 1x1."""

    def __init__(self, cin: int, cout: int = 256, rates: Sequence[int] = (6, 12, 18)):
        super().__init__()
        def branch(k: int, d: int) -> nn.Sequential:
            return nn.Sequential(nn.Conv2d(cin, cout, k, padding=0 if k == 1 else d, dilation=d, bias=False),
                                 nn.BatchNorm2d(cout), nn.ReLU(inplace=True))

        self.branches = nn.ModuleList([branch(1, 1)] + [branch(3, r) for r in rates])
        # no BatchNorm after global pooling: a 1x1 map per image breaks it at batch size 1
        self.image_pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(cin, cout, 1), nn.ReLU(inplace=True))
        self.project = nn.Sequential(nn.Conv2d(cout * (len(rates) + 2), cout, 1, bias=False), nn.BatchNorm2d(cout),
                                     nn.ReLU(inplace=True), nn.Dropout(0.1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = self.image_pool(x).expand(-1, -1, *x.shape[-2:])
        return self.project(torch.cat([b(x) for b in self.branches] + [pooled], 1))


class DeepLabV3PlusDecoder(nn.Module):
    """DeepLabV3+: ASPP on the atrous (stride 16) features, upsampled to stride 4 and fused with the
    stride-4 low-level features through two 3x3 convs. Output ``(N, width, H/4, W/4)``."""

    def __init__(self, encoder_channels: Sequence[int], strides: Sequence[int], upsample: str = "transpose",
                 width: int = 256, low_width: int = 48):
        super().__init__()
        if 4 not in strides:
            raise CnnkitError("deeplabv3plus needs an encoder with stride-4 features")
        self.low_index = list(strides).index(4)
        self.aspp = ASPP(encoder_channels[-1], width)
        self.up = ScoreUpsample(width, strides[-1] // 4, upsample)
        self.low = conv1x1_bn_relu(encoder_channels[self.low_index], low_width)
        self.fuse = nn.Sequential(conv_bn_relu(width + low_width, width), conv_bn_relu(width, width))
        self.out_channels, self.out_stride = width, 4

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        x = self.up(self.aspp(features[-1]))
        return self.fuse(torch.cat([x, self.low(features[self.low_index])], 1))


def conv1x1_bn_relu(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))

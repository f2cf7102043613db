"""A small fast classifier in the spirit of ResNet-9 and airbench.

A frozen 2x2 "whitening" convolution initialised from the training patches' covariance, then
conv -> max-pool -> BN -> GELU blocks, global max-pooling and a scaled linear head. Few layers,
wide enough to learn fast, cheap enough for a CPU.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from cnnkit.models.registry import register_model


def _conv_bn(cin: int, cout: int) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.GELU()]


class FastBlock(nn.Module):
    """conv -> 2x2 max-pool -> BN -> GELU -> conv -> BN -> GELU; halves H and W."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1, bias=False)
        self.pool = nn.MaxPool2d(2)
        self.norm1 = nn.BatchNorm2d(cout)
        self.act = nn.GELU()
        self.conv2 = nn.Sequential(*_conv_bn(cout, cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act(self.norm1(self.pool(self.conv1(x))))
        return self.conv2(x)


class FastNet(nn.Module):
    """Input ``(N, in_chans, H, W)`` normalised floats; output ``(N, num_classes)`` logits."""

    def __init__(self, num_classes: int, in_chans: int, widths: Sequence[int], whiten: bool,
                 logit_scale: float, stem_stride: int = 1):
        super().__init__()
        stem_out = 2 * in_chans * 4 if whiten else widths[0]
        self.stem_stride = stem_stride
        if whiten:
            # stride 2 turns the stem into a lossless 2x2 space-to-depth: 4x fewer pixels after it
            self.stem = nn.Conv2d(in_chans, stem_out, 2, stride=stem_stride, padding=0, bias=True)
            self.stem.weight.requires_grad_(False)  # set from the data, not learned
        else:
            self.stem = nn.Conv2d(in_chans, stem_out, 3, stride=stem_stride, padding=1, bias=False)
        self.whiten = whiten
        self.stem_act = nn.GELU()
        blocks, cin = [], stem_out
        for w in widths:
            blocks.append(FastBlock(cin, w))
            cin = w
        self.blocks = nn.Sequential(*blocks)
        self.pool = nn.AdaptiveMaxPool2d(1)
        self.head = nn.Linear(cin, num_classes, bias=False)
        self.logit_scale = logit_scale

    @torch.no_grad()
    def init_from_data(self, images: torch.Tensor, eps: float = 5e-4) -> None:
        """Set the whitening filters from ``images`` ``(N, C, H, W)`` (normalised training images).

        The filters are the eigenvectors of the 2x2 patch covariance scaled by 1/sqrt(eigenvalue),
        with their negatives, so the stem's output has decorrelated unit-variance channels.
        """
        if not self.whiten:
            return
        c = images.shape[1]
        s = self.stem_stride
        patches = images.float().unfold(2, 2, s).unfold(3, 2, s)  # N, C, H', W', 2, 2
        patches = patches.permute(0, 2, 3, 1, 4, 5).reshape(-1, c * 4)
        patches = patches - patches.mean(0)
        cov = patches.T @ patches / len(patches)
        eigval, eigvec = torch.linalg.eigh(cov)
        filters = (eigvec.T / torch.sqrt(eigval.clamp_min(0) + eps)[:, None]).reshape(-1, c, 2, 2)
        self.stem.weight.copy_(torch.cat([filters, -filters]).to(self.stem.weight))
        self.stem.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.blocks(self.stem_act(self.stem(x)))
        return self.head(self.pool(x).flatten(1)) * self.logit_scale


@register_model()
def fastnet(num_classes: int = 10, in_chans: int = 3, widths: Sequence[int] = (64, 128, 256),
            whiten: bool = True, logit_scale: float = 1 / 9, stem_stride: int = 1) -> nn.Module:
    """Small fast ResNet-9/airbench-style net: whitened stem, 3 conv blocks, max-pool head."""
    return FastNet(num_classes, in_chans, tuple(widths), whiten, logit_scale, stem_stride)


@register_model()
def fastnet_small(num_classes: int = 10, in_chans: int = 3, widths: Sequence[int] = (32, 64, 128),
                  whiten: bool = True, logit_scale: float = 1 / 9, stem_stride: int = 1) -> nn.Module:
    """fastnet with widths 32/64/128: about 4x cheaper, for quick CPU runs."""
    return FastNet(num_classes, in_chans, tuple(widths), whiten, logit_scale, stem_stride)


@register_model()
def fastnet_tiny(num_classes: int = 10, in_chans: int = 3, widths: Sequence[int] = (24, 48, 96),
                 whiten: bool = True, logit_scale: float = 1 / 9, stem_stride: int = 1) -> nn.Module:
    """fastnet with widths 24/48/96: the quickest to a good accuracy on small images on a CPU."""
    return FastNet(num_classes, in_chans, tuple(widths), whiten, logit_scale, stem_stride)

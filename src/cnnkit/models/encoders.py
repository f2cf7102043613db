"""Encoders for dense prediction: each returns a list of feature maps, shallow to deep.

Every encoder exposes ``out_channels`` and ``strides`` (one entry per feature map, strides
relative to the input: 2, 4, 8, 16, 32) so that any decoder can be put on top of it. With
``output_stride=16`` the deepest stage keeps stride 16 and dilates its convolutions instead
(for DeepLab's atrous features).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torch import nn
from torchvision.ops import FrozenBatchNorm2d

from cnnkit.errors import CnnkitError, did_you_mean
from cnnkit.models.basic_cnn import conv_bn_relu
from cnnkit.models.features import EncoderTrunk, FeaturesTrunk, ResNetTrunk, Trunk
from cnnkit.models.timm_models import TimmEncoder
from cnnkit.models.torchvision_models import build_torchvision

# name -> (widths per stage, convs per stage); VGG16's layout is SegNet's encoder
BASIC_PRESETS: dict[str, tuple[tuple[int, ...], tuple[int, ...]]] = {
    "small": ((32, 64, 128, 192, 256), (1, 2, 2, 2, 2)),
    "medium": ((32, 64, 128, 256, 512), (2, 2, 2, 2, 2)),
    "vgg16": ((64, 128, 256, 512, 512), (2, 2, 3, 3, 3)),
}


class BasicEncoder(nn.Module):
    """Five stages of conv-BN-ReLU blocks, each followed by a 2x2 max-pool.

    ``forward(x)`` -> features ``[(N, w_i, H / 2**(i+1), W / 2**(i+1))]`` for i = 0..4.
    ``forward_with_indices`` also returns the max-pool indices and pre-pool sizes, for SegNet's unpooling.
    """

    def __init__(self, in_chans: int, widths: Sequence[int], convs: Sequence[int], norm: str = "batch",
                 output_stride: int = 32):
        super().__init__()
        stages, cin = [], in_chans
        for width, n in zip(widths, convs):
            layers = []
            for _ in range(n):
                layers.append(conv_bn_relu(cin, width, norm))
                cin = width
            stages.append(nn.Sequential(*layers))
        self.stages = nn.ModuleList(stages)
        self.pool = nn.MaxPool2d(2, 2, return_indices=True)
        self.out_channels = list(widths)
        self.strides = [2, 4, 8, 16, 32]
        if output_stride == 16:  # no last pool: keep stride 16 and widen the last stage's view by dilation
            _dilate(self.stages[-1], 2)
            self.strides[-1] = 16
        self.output_stride = output_stride

    def cnnkit_trunk(self) -> Trunk:
        return Trunk("basic_encoder", EncoderTrunk(self))

    def forward_with_indices(self, x: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor], list]:
        features, indices, sizes = [], [], []
        for i, stage in enumerate(self.stages):
            x = stage(x)
            if i == len(self.stages) - 1 and self.output_stride == 16:
                features.append(x)
                break
            sizes.append(x.shape[-2:])
            x, idx = self.pool(x)
            features.append(x)
            indices.append(idx)
        return features, indices, sizes

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return self.forward_with_indices(x)[0]


def _dilate(module: nn.Module, dilation: int) -> None:
    """Turn strided convolutions into stride 1 and dilate the 3x3 ones (keeps the weights' shapes)."""
    for conv in module.modules():
        if isinstance(conv, nn.Conv2d):
            if conv.stride == (2, 2):
                conv.stride = (1, 1)
            if conv.kernel_size == (3, 3):
                conv.dilation, conv.padding = (dilation, dilation), (dilation, dilation)


def group_norm(channels: int) -> nn.GroupNorm:
    """GroupNorm with up to 32 groups that divide ``channels`` (32 for every ResNet width)."""
    return nn.GroupNorm(math.gcd(channels, 32), channels)


# norm name -> torchvision ``norm_layer``; None keeps the architecture's own BatchNorm
NORM_LAYERS: dict[str, Callable[[int], nn.Module] | None] = {
    "batch": None,
    "group": group_norm,  # statistics per image: independent of the batch size
    "frozen": FrozenBatchNorm2d,  # fixed pretrained statistics, as torchvision fine-tunes detectors
}


def norm_layer(norm: str) -> Callable[[int], nn.Module] | None:
    if norm not in NORM_LAYERS:
        raise CnnkitError(f"unknown norm '{norm}'.{did_you_mean(norm, NORM_LAYERS)} Norms: {', '.join(NORM_LAYERS)}")
    return NORM_LAYERS[norm]


def _norm_kw(norm: str) -> dict:
    layer = norm_layer(norm)
    return {} if layer is None else {"norm_layer": layer}


class ResNetEncoder(nn.Module):
    """torchvision ResNet body: stem (stride 2), then layer1..layer4 (strides 4, 8, 16, 32).

    ``norm``: batch (default), group or frozen (see ``NORM_LAYERS``).
    """

    def __init__(self, arch: str, in_chans: int, pretrained: str = "", output_stride: int = 32,
                 norm: str = "batch"):
        super().__init__()
        net = build_torchvision(arch, 1000, in_chans, pretrained, **_norm_kw(norm))
        self.stem = nn.Sequential(net.conv1, net.bn1, net.relu)
        self.pool = net.maxpool
        self.layers = nn.ModuleList([net.layer1, net.layer2, net.layer3, net.layer4])
        expansion = 4 if arch == "resnet50" else 1
        self.out_channels = [64] + [w * expansion for w in (64, 128, 256, 512)]
        self.strides = [2, 4, 8, 16, 32]
        if output_stride == 16:
            _dilate(self.layers[3], 2)
            self.strides[-1] = 16

    def cnnkit_trunk(self) -> Trunk:
        """Named as torchvision's ResNet, so that a classifier's trunk loads into this encoder and back."""
        stem = self.stem
        return Trunk("resnet", ResNetTrunk(stem[0], stem[1], stem[2], self.pool, list(self.layers)))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.stem(x)
        features = [x]
        x = self.pool(x)
        for layer in self.layers:
            x = layer(x)
            features.append(x)
        return features


class MobileNetV3Encoder(nn.Module):
    """torchvision MobileNetV3 ``features``, tapped at the last block of each resolution."""

    def __init__(self, arch: str, in_chans: int, pretrained: str = "", output_stride: int = 32,
                 norm: str = "batch"):
        super().__init__()
        net = build_torchvision(arch, 1000, in_chans, pretrained, dilated=output_stride == 16, **_norm_kw(norm))
        self.features = net.features
        self.taps, self.out_channels, self.strides = self._find_taps(in_chans)

    def cnnkit_trunk(self) -> Trunk:
        return Trunk("mobilenet_v3", FeaturesTrunk(self.features))

    @torch.no_grad()
    def _find_taps(self, in_chans: int) -> tuple[list[int], list[int], list[int]]:
        """Run a 64 px probe to find where the resolution changes; tap each resolution's last block."""
        was_training = self.training
        self.eval()
        x, sizes, chans = torch.zeros(1, in_chans, 64, 64), [], []
        for block in self.features:
            x = block(x)
            sizes.append(x.shape[-1])
            chans.append(x.shape[1])
        self.train(was_training)
        taps = [i for i in range(len(sizes)) if i == len(sizes) - 1 or sizes[i + 1] != sizes[i]]
        return taps, [chans[i] for i in taps], [64 // sizes[i] for i in taps]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        features = []
        for i, block in enumerate(self.features):
            x = block(x)
            if i in self.taps:
                features.append(x)
        return features


def _basic(in_chans: int, pretrained: str = "", output_stride: int = 32, preset: str = "small",
           widths: Sequence[int] = (), convs: Sequence[int] = (), norm: str = "batch") -> BasicEncoder:
    if pretrained:
        raise CnnkitError("the basic encoder has no pretrained weights; drop --pretrained or pick a resnet encoder")
    if preset not in BASIC_PRESETS:
        raise CnnkitError(f"basic encoder: unknown preset '{preset}'.{did_you_mean(preset, BASIC_PRESETS)}")
    p_widths, p_convs = BASIC_PRESETS[preset]
    return BasicEncoder(in_chans, tuple(widths) or p_widths, tuple(convs) or p_convs, norm, output_stride)


ENCODERS: dict[str, Callable[..., nn.Module]] = {
    "basic": _basic,
    "vgg16": lambda in_chans, **kw: _basic(in_chans, preset="vgg16", **kw),
    "resnet18": lambda in_chans, **kw: ResNetEncoder("resnet18", in_chans, **kw),
    "resnet34": lambda in_chans, **kw: ResNetEncoder("resnet34", in_chans, **kw),
    "resnet50": lambda in_chans, **kw: ResNetEncoder("resnet50", in_chans, **kw),
    "mobilenet_v3_small": lambda in_chans, **kw: MobileNetV3Encoder("mobilenet_v3_small", in_chans, **kw),
    "mobilenet_v3_large": lambda in_chans, **kw: MobileNetV3Encoder("mobilenet_v3_large", in_chans, **kw),
}


def build_encoder(name: str, in_chans: int, **kw) -> nn.Module:
    """An encoder by name (``ENCODERS``, or ``timm/<name>``: any timm network, cnnkit[timm]); ``kw``: pretrained,
    output_stride, norm, and the basic encoder's options."""
    if name.startswith("timm/"):
        return TimmEncoder(name[len("timm/"):], in_chans, **kw)
    if name not in ENCODERS:
        raise CnnkitError(f"unknown encoder '{name}'.{did_you_mean(name, ENCODERS)}")
    return ENCODERS[name](in_chans, **kw)

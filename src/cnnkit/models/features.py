"""``Trunk``: a network's convolutional feature extractor under one naming per family, and the modules that
present the common layouts. Each cnnkit network and encoder says what its trunk is (``cnnkit_trunk()``), as
timm's networks carry their ``feature_info``; ``cnnkit.models.trunk.trunk_of`` asks it, and knows only the
foreign networks (torchvision's, timm's classifiers) by their class.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass
class Trunk:
    family: str  # models of one family share parameter names; shapes tell their sizes apart
    module: nn.Module  # images (N, C, H, W) -> the deepest feature map (N, C', h, w)


class ResNetTrunk(nn.Module):
    """conv1 -> bn1 -> relu -> maxpool -> layer1..4 of a torchvision ResNet or a ``ResNetEncoder``."""

    def __init__(self, conv1: nn.Module, bn1: nn.Module, relu: nn.Module, maxpool: nn.Module, layers: list):
        super().__init__()
        self.conv1, self.bn1, self.relu, self.maxpool = conv1, bn1, relu, maxpool
        self.layer1, self.layer2, self.layer3, self.layer4 = layers

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))


class FeaturesTrunk(nn.Module):
    """A ``features`` sequence (MobileNetV3, EfficientNet, BasicCNN's conv blocks)."""

    def __init__(self, features: nn.Module):
        super().__init__()
        self.features = features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)


class EncoderTrunk(nn.Module):
    """An encoder's deepest feature map."""

    def __init__(self, encoder: nn.Module):
        super().__init__()
        self.encoder = encoder

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)[-1]

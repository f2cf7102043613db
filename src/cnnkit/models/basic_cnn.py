"""The classic CNN: conv-BN-ReLU blocks with max-pooling, then fully connected layers with dropout."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from cnnkit.errors import CnnkitError, did_you_mean
from cnnkit.models.features import FeaturesTrunk, Trunk
from cnnkit.models.registry import register_model

# name -> (block widths, convs per block, fully connected sizes, dropout)
PRESETS: dict[str, tuple[tuple[int, ...], int, tuple[int, ...], float]] = {
    "tiny": ((16, 32), 1, (64,), 0.25),
    "small": ((32, 64), 1, (128,), 0.5),
    "medium": ((32, 64, 128), 2, (256,), 0.5),
    "large": ((64, 128, 256), 2, (512, 256), 0.5),
}


def conv_bn_relu(cin: int, cout: int, norm: str = "batch") -> nn.Sequential:
    """3x3 conv -> norm -> ReLU; ``norm`` is 'batch', 'group' (8 groups, batch-size independent) or 'none'."""
    if norm == "none":
        return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.ReLU(inplace=True))
    layer = nn.BatchNorm2d(cout) if norm == "batch" else nn.GroupNorm(min(8, cout), cout)
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), layer, nn.ReLU(inplace=True))


class BasicCNN(nn.Module):
    """Feature extractor of conv blocks (each ends in a 2x2 max-pool), then an MLP classifier.

    Input ``(N, in_chans, H, W)`` floats; output ``(N, num_classes)`` logits. ``input_size`` fixes
    the flattened size; other sizes are pooled adaptively to the same grid, so any size works.
    """

    def __init__(self, num_classes: int, in_chans: int, widths: Sequence[int], convs_per_block: int,
                 fc: Sequence[int], dropout: float, input_size: int, norm: str = "batch"):
        super().__init__()
        layers: list[nn.Module] = []
        cin = in_chans
        for w in widths:
            for _ in range(convs_per_block):
                layers.append(conv_bn_relu(cin, w, norm))
                cin = w
            layers.append(nn.MaxPool2d(2))
        self.features = nn.Sequential(*layers)
        grid = max(1, input_size // 2 ** len(widths))
        self.pool = nn.AdaptiveMaxPool2d(grid)
        head: list[nn.Module] = [nn.Flatten()]
        width = cin * grid * grid
        for size in fc:
            head += [nn.Dropout(dropout), nn.Linear(width, size), nn.ReLU(inplace=True)]
            width = size
        head += [nn.Dropout(dropout), nn.Linear(width, num_classes)]
        self.classifier = nn.Sequential(*head)

    def cnnkit_trunk(self) -> Trunk:
        return Trunk("basic_cnn", FeaturesTrunk(self.features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.pool(self.features(x)))


@register_model()
def basic_cnn(num_classes: int = 10, in_chans: int = 3, preset: str = "small", widths: Sequence[int] = (),
              convs_per_block: int = 0, fc: Sequence[int] | None = None, dropout: float = -1.0,
              input_size: int = 28, norm: str = "batch") -> nn.Module:
    """Classic CNN (conv/BN/ReLU -> max-pool blocks, FC + dropout); presets tiny/small/medium/large."""
    if preset not in PRESETS:
        raise CnnkitError(f"basic_cnn: unknown preset '{preset}'.{did_you_mean(preset, PRESETS)}")
    if norm not in ("batch", "group", "none"):
        raise CnnkitError(f"basic_cnn: norm must be batch, group or none, got '{norm}'")
    p_widths, p_convs, p_fc, p_drop = PRESETS[preset]
    return BasicCNN(num_classes, in_chans, tuple(widths) or p_widths, convs_per_block or p_convs,
                    p_fc if fc is None else tuple(fc), p_drop if dropout < 0 else dropout, input_size, norm)

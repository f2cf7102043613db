"""A small fast classifier in the spirit of ResNet-9 and airbench.

A 2x2 "whitening" convolution initialised from the training patches' covariance and not trained,
then conv -> max-pool -> BN -> activation blocks, global max-pooling and a scaled linear head.
Few layers, wide enough to learn fast, cheap enough for a CPU.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from cnnkit.errors import CnnkitError
from cnnkit.models.features import Trunk
from cnnkit.models.registry import register_model

ACTIVATIONS = {"gelu": nn.GELU, "relu": nn.ReLU}


class FastBlock(nn.Module):
    """conv -> 2x2 max-pool -> BN -> act -> conv -> BN -> act; halves H and W."""

    def __init__(self, cin: int, cout: int, act: type[nn.Module]):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1, bias=False)
        self.pool = nn.MaxPool2d(2)
        self.norm1 = nn.BatchNorm2d(cout)
        self.act1 = act()
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.norm2 = nn.BatchNorm2d(cout)
        self.act2 = act()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act1(self.norm1(self.pool(self.conv1(x))))
        return self.act2(self.norm2(self.conv2(x)))


class FastNet(nn.Module):
    """Input ``(N, in_chans, H, W)`` normalised floats; output ``(N, num_classes)`` logits.

    ``stem_stride=2`` makes the whitening stem a lossless 2x2 space-to-depth (4x fewer pixels
    after it); ``freeze_stem`` also fixes its bias, so nothing before the first block needs a
    gradient and the first convolution skips computing one for its input.
    """

    def __init__(self, num_classes: int, in_chans: int, widths: Sequence[int], whiten: bool = True,
                 logit_scale: float = 1 / 9, stem_stride: int = 1, act: str = "gelu", freeze_stem: bool = False):
        super().__init__()
        if act not in ACTIVATIONS:
            raise CnnkitError(f"fastnet: act must be one of {', '.join(ACTIVATIONS)}, got '{act}'")
        stem_out = 2 * in_chans * 4 if whiten else widths[0]
        self.whiten, self.stem_stride, self.logit_scale = whiten, stem_stride, logit_scale
        self.stem = nn.Conv2d(in_chans, stem_out, 2 if whiten else 3, stride=stem_stride, padding=0 if whiten else 1,
                              bias=whiten)
        if whiten:
            self.stem.weight.requires_grad_(False)  # set from the data, not learned
            self.stem.bias.requires_grad_(not freeze_stem)
        self.stem_act = ACTIVATIONS[act]()
        blocks, cin = [], stem_out
        for w in widths:
            blocks.append(FastBlock(cin, w, ACTIVATIONS[act]))
            cin = w
        self.blocks = nn.Sequential(*blocks)
        self.pool = nn.AdaptiveMaxPool2d(1)
        self.head = nn.Linear(cin, num_classes, bias=False)

    @torch.no_grad()
    def init_from_data(self, images: torch.Tensor, eps: float = 5e-4) -> None:
        """Set the whitening filters from ``images`` ``(N, C, H, W)`` (normalised training images).

        The filters are the eigenvectors of the 2x2 patch covariance scaled by 1/sqrt(eigenvalue),
        with their negatives, so the stem's output has decorrelated unit-variance channels.
        """
        if not self.whiten:
            return
        c, s = images.shape[1], self.stem_stride
        patches = images.float().unfold(2, 2, s).unfold(3, 2, s)  # N, C, H', W', 2, 2
        patches = patches.permute(0, 2, 3, 1, 4, 5).reshape(-1, c * 4)
        patches = patches - patches.mean(0)
        cov = patches.T @ patches / len(patches)
        eigval, eigvec = torch.linalg.eigh(cov)
        filters = (eigvec.T / torch.sqrt(eigval.clamp_min(0) + eps)[:, None]).reshape(-1, c, 2, 2)
        self.stem.weight.copy_(torch.cat([filters, -filters]).to(self.stem.weight))
        self.stem.bias.zero_()

    def cnnkit_trunk(self) -> Trunk:
        return Trunk("fastnet", FastTrunk(self))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.blocks(self.stem_act(self.stem(x)))
        return self.head(self.pool(x).flatten(1)) * self.logit_scale


class FastTrunk(nn.Module):
    """FastNet's whitening stem and conv blocks; ``init_from_data`` sets the stem as FastNet's does."""

    def __init__(self, net: FastNet):
        super().__init__()
        self.stem, self.stem_act, self.blocks = net.stem, net.stem_act, net.blocks
        self.whiten, self.stem_stride = net.whiten, net.stem_stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(self.stem_act(self.stem(x)))

    def init_from_data(self, images: torch.Tensor) -> None:
        FastNet.init_from_data(self, images)  # type: ignore[arg-type]  # uses only stem, whiten, stem_stride


def _register(name: str, widths: tuple[int, ...], doc: str) -> None:
    def builder(num_classes: int = 10, in_chans: int = 3, widths: Sequence[int] = widths, **kw) -> nn.Module:
        return FastNet(num_classes, in_chans, tuple(widths), **kw)

    builder.__doc__ = doc
    register_model(name)(builder)


_register("fastnet", (64, 128, 256), "Small fast ResNet-9/airbench-style net: whitened stem, 3 conv blocks.")
_register("fastnet_small", (32, 64, 128), "fastnet with widths 32/64/128: about 4x cheaper, for quick CPU runs.")
_register("fastnet_tiny", (24, 48, 96), "fastnet with widths 24/48/96: the quickest to good accuracy on a CPU.")

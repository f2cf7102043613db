"""Self-supervised pretraining networks: any registered model's trunk with a method's head.

- ``simclr`` and ``vicreg`` (joint embedding): trunk -> global average pool -> projector MLP. Two
  augmented views of each image go through it; the loss (``cnnkit.tasks.pretrain.losses``) pulls
  their projections together and keeps the batch's projections apart (SimCLR) or spread (VICReg).
- ``mae`` (reconstruction, the mission's encoder-decoder): square patches of the input are blanked,
  and a decoder of transposed convolutions rebuilds the image from the trunk's deepest map; the loss
  is the error on the blanked pixels (a masked convolutional autoencoder).

The embedding of an image is the pooled trunk output, not the projection (as in SimCLR's and
VICReg's evaluations): it is what the fine-tuned model starts from.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from cnnkit.errors import CnnkitError, did_you_mean
from cnnkit.models.features import Trunk
from cnnkit.models.registry import PRETRAINER, create_model, register_model
from cnnkit.models.trunk import trunk_channels, trunk_of

# method -> (projector hidden width, projection width) for the joint-embedding methods
PROJECTORS = {"simclr": (512, 128), "vicreg": (1024, 1024)}
METHODS = ("simclr", "vicreg", "mae")


def projector(cin: int, hidden: int, out: int) -> nn.Sequential:
    """Linear-BN-ReLU-Linear: SimCLR's projection head (VICReg's expander, shallower for a CPU)."""
    return nn.Sequential(nn.Linear(cin, hidden, bias=False), nn.BatchNorm1d(hidden), nn.ReLU(inplace=True),
                         nn.Linear(hidden, out))


def reconstruction_decoder(cin: int, stride: int, out_chans: int) -> nn.Sequential:
    """Transposed 2x2 convolutions (each doubles H and W, halves the width) from ``stride`` back to 1."""
    layers: list[nn.Module] = []
    width = cin
    for _ in range(max(0, math.ceil(math.log2(stride)))):
        nxt = max(32, width // 2)
        layers += [nn.ConvTranspose2d(width, nxt, 2, stride=2, bias=False), nn.BatchNorm2d(nxt), nn.ReLU(inplace=True)]
        width = nxt
    layers.append(nn.Conv2d(width, out_chans, 3, padding=1))
    return nn.Sequential(*layers)


class PretrainNet(nn.Module):
    """``forward(views)``: views ``(N, V, C, H, W)`` (normalised) -> dict of the method's outputs.

    In evaluation the first view is the plain image: its embedding ``(N, D)`` is returned as
    ``embedding`` (and, for the joint-embedding methods, its projection ``(N, P)`` as ``projection``,
    where a collapse shows), and the other views feed the loss. ``embed(images)`` gives ``(N, D)``.
    """

    def __init__(self, net: nn.Module, in_chans: int, method: str, mask_ratio: float = 0.5, patch: int = 0):
        super().__init__()
        if method not in METHODS:
            raise CnnkitError(f"unknown pretraining method '{method}'.{did_you_mean(method, METHODS)} "
                              f"Methods: {', '.join(METHODS)}")
        trunk = trunk_of(net)
        self.trunk, self.family, self.method = trunk.module, trunk.family, method
        self.channels, self.stride = trunk_channels(self.trunk, in_chans)
        self.mask_ratio, self.patch = mask_ratio, patch
        if method == "mae":
            self.decoder = reconstruction_decoder(self.channels, self.stride, in_chans)
        else:
            self.projector = projector(self.channels, *PROJECTORS[method])

    def cnnkit_trunk(self) -> Trunk:
        return Trunk(self.family, self.trunk)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Images ``(N, C, H, W)`` -> embeddings ``(N, D)``: the trunk's output averaged over space."""
        return self.trunk(x).mean((2, 3))

    def init_from_data(self, images: torch.Tensor) -> None:
        """Data-dependent initialisation of the trunk, where it has one (FastNet's whitening stem)."""
        init = getattr(self.trunk, "init_from_data", None)
        if init is not None:
            init(images)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        if x.ndim == 4:
            return {"embedding": self.embed(x)}
        out: dict[str, torch.Tensor] = {}
        if not self.training:
            out["embedding"] = self.embed(x[:, 0])
            if self.method != "mae":
                out["projection"] = self.projector(out["embedding"])
            x = x[:, 1:]
        if self.method == "mae":
            return {**out, **self.reconstruct(x[:, 0])}
        n, v = x.shape[:2]
        features = self.embed(x.flatten(0, 1))
        return {**out, "z": self.projector(features).view(n, v, -1)}

    def mask(self, x: torch.Tensor) -> torch.Tensor:
        """A random mask ``(N, 1, H, W)``, 1 on blanked square patches (``mask_ratio`` of them)."""
        n, _, h, w = x.shape
        p = self.patch or max(2, min(h, w) // 8)
        grid = torch.rand(n, 1, -(-h // p), -(-w // p), device=x.device) < self.mask_ratio
        return grid.repeat_interleave(p, 2).repeat_interleave(p, 3)[..., :h, :w].to(x.dtype)

    def reconstruct(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        mask = self.mask(x)
        features = self.trunk(x * (1 - mask))  # blanked patches are 0: the mean colour of normalised input
        recon = F.interpolate(self.decoder(features), size=x.shape[-2:], mode="bilinear", align_corners=False)
        return {"recon": recon, "target": x, "mask": mask}


@register_model("selfsup", kind=PRETRAINER)
def selfsup(num_classes: int = 0, in_chans: int = 3, backbone: str = "basic_cnn", backbone_args: dict | None = None,
            method: str = "simclr", **kw: Any) -> nn.Module:
    """Self-supervised pretraining of any registered model's trunk (methods simclr, vicreg, mae)."""
    net = create_model(backbone, num_classes=2, in_chans=in_chans, **dict(backbone_args or {}))
    return PretrainNet(net, in_chans, method, **kw)

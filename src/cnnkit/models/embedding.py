"""Metric learning: any registered model's trunk mapped to unit vectors in which identity is nearness.

``embedder`` wraps the trunk of any registered model (``--model`` names it) with the neck of ArcFace's
reference models: global average pooling, a linear layer to ``dim`` and batch norm (Deng et al., CVPR
2019, "BN-Dropout-FC-BN" with the pooling that lets any input size through), then L2 normalisation.
In training, ``forward(images, labels)`` returns the loss of pytorch-metric-learning (Musgrave et al.,
2020): ArcFace or CosFace (an additive-margin softmax whose class centres are the loss's weights, kept
here so that the optimiser trains them and checkpoints keep them) or, over the pairs and triplets a
miner picks in each batch, the multi-similarity or triplet loss.
"""

from __future__ import annotations

import hashlib
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from cnnkit.errors import CnnkitError, did_you_mean
from cnnkit.models.features import Trunk
from cnnkit.models.registry import EMBEDDER, create_model, register_model
from cnnkit.models.trunk import trunk_channels, trunk_of

# loss -> its published default margin (ArcFace: degrees, as pytorch-metric-learning takes it; CosFace: cosine;
# triplet: distance; multi-similarity: the miner's epsilon)
LOSSES = {"arcface": 28.6, "cosface": 0.35, "multisimilarity": 0.1, "triplet": 0.1}
MARGIN_LOSSES = ("arcface", "cosface")  # those with class centres: they need the training identities' count


def metric_loss(name: str, num_classes: int, dim: int, margin: float = 0.0, scale: float = 0.0
                ) -> tuple[nn.Module, nn.Module | None]:
    """(loss, miner or None) of pytorch-metric-learning; ``margin``/``scale`` 0: the loss's own default."""
    from pytorch_metric_learning import losses, miners

    if name not in LOSSES:
        raise CnnkitError(f"unknown metric loss '{name}'.{did_you_mean(name, LOSSES)} Losses: {', '.join(LOSSES)}")
    m = margin or LOSSES[name]
    if name in MARGIN_LOSSES:
        if num_classes < 2:
            raise CnnkitError(f"{name}: {num_classes} training identities; a margin loss needs two or more")
        cls = losses.ArcFaceLoss if name == "arcface" else losses.CosFaceLoss
        return cls(num_classes, dim, margin=m, scale=scale or 64.0), None
    if name == "multisimilarity":
        return losses.MultiSimilarityLoss(alpha=2, beta=50, base=0.5), miners.MultiSimilarityMiner(epsilon=m)
    return (losses.TripletMarginLoss(margin=m),
            miners.TripletMarginMiner(margin=m, type_of_triplets="semihard"))


class EmbeddingNet(nn.Module):
    """``forward(images)``: ``(N, C, H, W)`` normalised images -> ``(N, dim)`` embeddings (unit length when
    ``normalise``); ``forward(images, labels)`` in training: the metric loss (a scalar)."""

    def __init__(self, net: nn.Module, in_chans: int, dim: int = 128, normalise: bool = True, loss: str = "arcface",
                 num_classes: int = 0, margin: float = 0.0, scale: float = 0.0, dropout: float = 0.0,
                 prewhiten: bool = False, flip_average: bool = False):
        super().__init__()
        self.prewhiten, self.flip_average = prewhiten, flip_average
        trunk = trunk_of(net)
        self.trunk, self.family = trunk.module, trunk.family
        channels, _ = trunk_channels(self.trunk, in_chans)
        self.dim, self.normalise, self.loss_name = dim, normalise, loss
        self.neck = nn.Sequential(nn.Dropout(dropout), nn.Linear(channels, dim, bias=False), nn.BatchNorm1d(dim))
        self.criterion, self.miner = metric_loss(loss, num_classes, dim, margin, scale)

    def cnnkit_trunk(self) -> Trunk:
        return Trunk(self.family, self.trunk)

    def init_from_data(self, images: torch.Tensor) -> None:
        """Data-dependent initialisation of the trunk, where it has one (FastNet's whitening stem)."""
        init = getattr(self.trunk, "init_from_data", None)
        if init is not None:
            init(images)

    def embedding(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, C, H, W)`` normalised images -> ``(N, dim)`` float32 embeddings; in evaluation with
        ``flip_average``, the mean of the image's and its mirror image's (unit) embeddings, as face recognition
        is evaluated (ArcFace, insightface): a face lit from the left then counts as much as its mirror."""
        if self.prewhiten:  # FaceNet's prewhitening: each image to zero mean and unit variance, whatever its lighting
            x = (x - x.mean((1, 2, 3), keepdim=True)) / x.std((1, 2, 3), keepdim=True).clamp_min(1e-3)
        if self.flip_average and not self.training:
            v = F.normalize(self.vector(x), dim=1) + F.normalize(self.vector(x.flip(-1)), dim=1)
            return F.normalize(v, dim=1) if self.normalise else v / 2
        v = self.vector(x)
        return F.normalize(v, dim=1) if self.normalise else v

    def vector(self, x: torch.Tensor) -> torch.Tensor:
        """The neck's output ``(N, dim)`` float32, before normalisation."""
        return self.neck(self.trunk(x).mean((2, 3))).float()

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        if labels is None:
            return self.embedding(x)
        v = self.embedding(x)
        pairs = self.miner(v, labels) if self.miner is not None else None
        return self.criterion(v, labels, pairs) if pairs is not None else self.criterion(v, labels)


@register_model("embedder", kind=EMBEDDER)
def embedder(num_classes: int = 0, in_chans: int = 3, backbone: str = "resnet18", backbone_args: dict | None = None,
             pretrained: str = "", **kw: Any) -> nn.Module:
    """Metric learning on any registered model's trunk (ArcFace, CosFace, multi-similarity, triplet)."""
    args = dict(backbone_args or {})
    if pretrained:  # torchvision's weights are the backbone's (a cnnkit checkpoint's trunk is loaded by the caller)
        args["pretrained"] = pretrained
    net = create_model(backbone, num_classes=2, in_chans=in_chans, **args)
    return EmbeddingNet(net, in_chans, num_classes=num_classes, **kw)


def fingerprint(module: nn.Module) -> str:
    """A short SHA-256 of the weights and buffers that compute the embedding (not the loss's class centres): a
    gallery of vectors is searched only by the model whose weights made them. 16 hex digits."""
    digest = hashlib.sha256()
    for key, value in sorted(module.state_dict().items()):
        if ".criterion." in f".{key}." or key.startswith("criterion."):
            continue
        digest.update(key.encode())
        digest.update(value.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()[:16]

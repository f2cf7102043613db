"""timm's models (``pip install 'cnnkit[timm]'``) with their weights from a local file (no downloads).

Names: ``timm/<name>`` is timm's classifier ``<name>`` (``timm/convnext_tiny``, ``timm/resnet50d``);
``<arch>_timm/<name>`` is a segmentation model (``unet_timm/efficientnet_b3``) or a detector
(``maskrcnn_timm/resnet50d``) on timm's ``<name>`` as encoder, its features taken with ``features_only``.
``pretrained`` is a file of timm's weights (``model.safetensors`` or ``pytorch_model.bin`` from the
model's Hugging Face page, or a state dict): timm loads it, maps RGB filters to ``in_chans`` and drops a
classifier of another size.

Source: Wightman, "PyTorch Image Models" (timm).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from cnnkit.errors import CnnkitError, did_you_mean, require
from cnnkit.models.features import Trunk

PREFIX = "timm/"


def _timm(name: str) -> Any:
    """timm, after checking it is installed and knows ``name``."""
    require("timm", "timm", f"model {PREFIX}{name}")
    import timm

    if not timm.is_model(name):
        raise CnnkitError(f"{PREFIX}{name}: not a timm model.{did_you_mean(name, timm.list_models())} "
                          "`python -c \"import timm; print(timm.list_models('*convnext*'))\"` lists them")
    return timm


def _weights(pretrained: str) -> dict[str, Any]:
    """timm's keywords that load ``pretrained`` (a local file) instead of downloading."""
    if not pretrained:
        return {"pretrained": False}
    if not Path(pretrained).is_file():
        raise CnnkitError(f"--pretrained {pretrained}: file not found; give a file of timm's weights "
                          "(model.safetensors from the model's page), or drop --pretrained")
    return {"pretrained": True, "pretrained_cfg_overlay": {"file": str(pretrained)}}


def _create(timm: Any, name: str, pretrained: str, **kw: Any) -> nn.Module:
    try:
        return timm.create_model(name, **_weights(pretrained), **kw)
    except (RuntimeError, KeyError, ValueError) as e:  # a file of another model: missing or mis-shaped tensors
        if not pretrained:
            raise
        raise CnnkitError(f"--pretrained {pretrained}: not weights of timm's {name} "
                          f"({str(e).splitlines()[0][:160]}); give that model's own file") from None


def timm_classifier(name: str, num_classes: int, in_chans: int = 3, pretrained: str = "", **kw: Any) -> nn.Module:
    """timm's ``name`` with ``num_classes`` outputs and ``in_chans`` inputs; ``kw`` go to ``timm.create_model``
    (``drop_rate``, ``drop_path_rate``, ...)."""
    net = _create(_timm(name), name, pretrained, num_classes=num_classes, in_chans=in_chans, **kw)
    net.cnnkit_timm_name = name  # trunk_of finds its features by this (cnnkit.models.trunk)
    return net


# a timm classifier's children that pool and classify: not part of its trunk
HEAD_PARTS = ("global_pool", "head_drop", "fc_norm", "fc", "head", "classifier")


class TimmTrunk(nn.Module):
    """A timm network's feature layers under their own names (the head left out); ``forward`` is the network's
    ``forward_features`` (a classifier) or its deepest feature map (a ``TimmEncoder``)."""

    def __init__(self, net: nn.Module, deepest: bool = False):
        super().__init__()
        object.__setattr__(self, "source", net)  # not a submodule: the trunk's parameters are the children below
        self.deepest = deepest
        for name, child in net.named_children():
            if name not in HEAD_PARTS:
                self.add_module(name, child)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.source(x)[-1] if self.deepest else self.source.forward_features(x)


class TimmEncoder(nn.Module):
    """timm's ``features_only`` network: ``forward(x)`` -> a list of feature maps; ``out_channels`` and
    ``strides`` from timm's ``feature_info``."""

    def __init__(self, name: str, in_chans: int, pretrained: str = "", output_stride: int = 32, norm: str = "",
                 **kw: Any):
        super().__init__()
        timm = _timm(name)
        extra = {"output_stride": output_stride} if output_stride != 32 else {}
        self.net = _create(timm, name, pretrained, features_only=True, in_chans=in_chans, **extra, **kw)
        if norm == "frozen":  # detectors fine-tune with BatchNorm fixed at the pretrained statistics
            self.net = timm.layers.freeze_batch_norm_2d(self.net)
        self.name = name
        self.out_channels = list(self.net.feature_info.channels())
        self.strides = list(self.net.feature_info.reduction())

    def cnnkit_trunk(self) -> Trunk:
        """Named as timm's classifier of the same network, where timm keeps the names."""
        return Trunk(f"timm/{self.name}", TimmTrunk(self.net, deepest=True))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return list(self.net(x))

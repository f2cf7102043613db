"""``ImageModel``: a registered network plus its input normalisation and the metadata to rebuild it."""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from cnnkit import __version__
from cnnkit.errors import CnnkitError
from cnnkit.log import LOGGER
from cnnkit.meta import SCHEMA, ModelMeta
from cnnkit.models.registry import create_model
from cnnkit.models.trunk import load_trunk, trunk_channels, trunk_of


class ImageModel(nn.Module):
    """Takes images ``(N, C, H, W)``, uint8 0..255 or float 0..1, and normalises them itself.

    ``meta`` (a :class:`cnnkit.meta.ModelMeta`) holds what a checkpoint needs to rebuild and use the model:
    task, model name and arguments, classes, channels, image size, mean and std (of 0..1 pixels).
    """

    def __init__(self, net: nn.Module, meta: Mapping[str, Any]):
        super().__init__()
        self.net = net
        self.meta = ModelMeta.from_dict(meta)
        c = self.meta.in_chans
        self.register_buffer("mean", torch.tensor(self.meta.mean, dtype=torch.float32).view(1, c, 1, 1))
        self.register_buffer("std", torch.tensor(self.meta.std, dtype=torch.float32).view(1, c, 1, 1))

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, C, H, W)`` or one ``(C, H, W)`` image -> normalised float."""
        x = x.float() / 255.0 if x.dtype == torch.uint8 else x.float()
        if x.ndim == 3:
            return (x - self.mean[0]) / self.std[0]
        return (x - self.mean) / self.std

    def encoder_parameters(self) -> list[nn.Parameter]:
        """The parameters of the network's encoder (its trunk: ``cnnkit.models.trunk``): what ``--pretrained``
        starts and ``--freeze-epochs`` holds fixed. CnnkitError for a network with no encoder to take apart."""
        return list(trunk_of(self.net).module.parameters())

    def total_stride(self) -> int:
        """How many times the encoder shrinks each side (32 for a ResNet, 16 for DeepLabV3+): the smallest
        input side that leaves its deepest features a pixel. 1 for a network without an encoder cnnkit knows."""
        try:
            trunk = trunk_of(self.net)
        except CnnkitError:
            return 1
        _, stride = trunk_channels(trunk.module, self.meta.in_chans, side=128)
        return 2 ** round(math.log2(stride))  # FastNet's unpadded stem reads 128 -> 14 as 9: its pools make 8

    def forward(self, x: torch.Tensor | list[torch.Tensor], *args: Any) -> Any:
        """A batch tensor, or a list of ``(C, H, W)`` images of any sizes (detection); ``args`` (the
        detection targets in training) pass through to the network.

        A list of images of different sizes is run one image at a time in evaluation: batching pads
        them to one size, and GroupNorm's per-image statistics would then count the padding.
        """
        if not isinstance(x, (list, tuple)):
            return self.net(self.normalize(x), *args)
        x = [self.normalize(im) for im in x]
        if not self.training and not args and len({im.shape for im in x}) > 1:
            return [out for im in x for out in self.net([im])]
        return self.net(x, *args)


def build_image_model(meta: ModelMeta | Mapping[str, Any], pretrained: str = "") -> ImageModel:
    """Build the card's model (``meta.model`` with its ``model_args``, ``num_outputs``, ``in_chans``); a
    card's dict (``ModelMeta.from_dict``) is taken too.

    ``pretrained``: torchvision weights (a state dict file, or 'torchvision') for the model's builder, or a
    cnnkit checkpoint whose encoder starts this model's (``cnnkit.models.trunk``; a pretrain run's, say).
    """
    meta = ModelMeta.from_dict(meta)
    kw = dict(meta.model_args)
    start = read_cnnkit_checkpoint(pretrained) if pretrained else None  # a cnnkit run: its encoder is taken
    if pretrained and start is None:
        kw["pretrained"] = pretrained
    # num_outputs: one per class, but a binary segmenter has one output (sigmoid) for its two classes
    net = create_model(meta.model, num_classes=meta.num_outputs, in_chans=meta.in_chans, **kw)
    if start is not None:
        LOGGER.info(load_trunk_from(net, pretrained, start))
    return ImageModel(net, meta.replace(cnnkit_version=__version__, schema=SCHEMA))


def read_cnnkit_checkpoint(path: str) -> dict | None:
    """A cnnkit checkpoint's contents (loaded with ``weights_only``), or None for any other weights file."""
    if not Path(path).is_file():
        return None
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # noqa: BLE001 - not a checkpoint of ours; the caller's own loader says why
        return None
    return ckpt if isinstance(ckpt, dict) and "meta" in ckpt and isinstance(ckpt.get("model"), dict) else None


def load_trunk_from(net: nn.Module, path: str, ckpt: dict) -> str:
    """Start ``net``'s trunk from the trunk of the cnnkit checkpoint ``ckpt`` (read from ``path``): a pretrain
    run's encoder, or any trained model's. Returns the line that says what was loaded."""
    meta = ModelMeta.from_dict(ckpt["meta"], origin=path)
    source = build_image_model(meta)
    try:
        source.load_state_dict(ckpt["model"])
    except RuntimeError as e:
        raise CnnkitError(f"{path}: weights do not fit {meta.model} ({str(e).splitlines()[0]})") from None
    trunk = trunk_of(source.net)
    return load_trunk(net, trunk.module.state_dict(), trunk.family, path)


def _tensors(obj: Any) -> list[torch.Tensor]:
    if isinstance(obj, torch.Tensor):
        return [obj]
    if isinstance(obj, (list, tuple)):
        return [t for o in obj for t in _tensors(o)]
    if isinstance(obj, Mapping):
        return [t for o in obj.values() for t in _tensors(o)]
    return []


def refuse_non_finite_outputs(model: ImageModel, source: str) -> None:
    """Prediction raises CnnkitError when the network computes NaN or infinity: argmax of NaN logits is class
    0 (a segmenter said 'background 100%'), and a detector's NaN scores fall under every threshold, so such a
    checkpoint predicted nothing, or nonsense, with exit 0. The detector's backbone is watched too."""

    def check(module: nn.Module, inputs: Any, output: Any) -> None:
        if torch.jit.is_tracing() or torch.onnx.is_in_onnx_export() or torch.compiler.is_compiling():
            return  # exporting: the graph is written, not run on data
        if any(t.is_floating_point() and not bool(torch.isfinite(t).all()) for t in _tensors(output)):
            raise CnnkitError(f"{source}: the model computes NaN or infinite values (its weights diverged in "
                              "training), so it cannot predict; train again with a lower --lr or --grad-clip")

    model.register_forward_hook(check)
    backbone = getattr(model.net, "backbone", None)
    if isinstance(backbone, nn.Module):
        backbone.register_forward_hook(check)

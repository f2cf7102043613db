"""The trunk of any registered model: its convolutional feature extractor, under one naming per family.

A classifier's trunk is everything before its pooling and classifier; a segmentation model's is its
encoder; a detector's is the encoder under its feature pyramid. ``trunk_of(net)`` returns it as a
module whose parameter names are the same in every model of a family (torchvision's names for
ResNet and MobileNet): a ResNet-18 pretrained as ``resnet18`` loads into ``unet_resnet18``'s encoder
and ``maskrcnn_resnet18``'s, and back. The trunk shares its layers with ``net``: loading into it
loads into the model.

Families: resnet, mobilenet_v3, efficientnet, basic_cnn, basic_encoder, fastnet, and timm/<name> for each
timm network (a classifier's and an encoder's layers share names where timm's ``features_only`` keeps them).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
import torchvision
from torch import nn
from torchvision.models.detection.generalized_rcnn import GeneralizedRCNN

from cnnkit.errors import CnnkitError
from cnnkit.models.basic_cnn import BasicCNN
from cnnkit.models.encoders import BasicEncoder, MobileNetV3Encoder, ResNetEncoder
from cnnkit.models.fastnet import FastNet
from cnnkit.models.segmentation import SegmentationModel
from cnnkit.models.torchvision_models import adapt_in_chans

if TYPE_CHECKING:
    from PIL import Image

# buffers a trunk may lack or gain between normalisations (BatchNorm's statistics; GroupNorm has none)
OPTIONAL = ("running_mean", "running_var", "num_batches_tracked")


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


@dataclass
class Trunk:
    family: str  # models of one family share parameter names; shapes tell their sizes apart
    module: nn.Module  # images (N, C, H, W) -> the deepest feature map (N, C', h, w)


def _encoder_trunk(encoder: nn.Module) -> Trunk:
    from cnnkit.models.timm_models import TimmEncoder, TimmTrunk

    if isinstance(encoder, TimmEncoder):  # named as timm's classifier of the same network, where timm keeps them
        return Trunk(f"timm/{encoder.name}", TimmTrunk(encoder.net, deepest=True))
    if isinstance(encoder, ResNetEncoder):
        stem = encoder.stem
        return Trunk("resnet", ResNetTrunk(stem[0], stem[1], stem[2], encoder.pool, list(encoder.layers)))
    if isinstance(encoder, MobileNetV3Encoder):
        return Trunk("mobilenet_v3", FeaturesTrunk(encoder.features))
    if isinstance(encoder, BasicEncoder):
        return Trunk("basic_encoder", EncoderTrunk(encoder))
    raise CnnkitError(f"{type(encoder).__name__}: an encoder cnnkit cannot take apart for pretraining")


def trunk_of(net: nn.Module) -> Trunk:
    """The trunk of a registered model's network (not the ``ImageModel`` around it); CnnkitError if none."""
    if getattr(net, "cnnkit_timm_name", ""):  # timm/<name>
        from cnnkit.models.timm_models import TimmTrunk

        return Trunk(f"timm/{net.cnnkit_timm_name}", TimmTrunk(net))
    if isinstance(net, SegmentationModel):
        return _encoder_trunk(net.encoder)
    if isinstance(net, GeneralizedRCNN) and hasattr(net.backbone, "body"):  # torchvision's layout (COCO weights)
        body = net.backbone.body
        layers = [body.layer1, body.layer2, body.layer3, body.layer4]
        return Trunk("resnet", ResNetTrunk(body.conv1, body.bn1, body.relu, body.maxpool, layers))
    if isinstance(net, GeneralizedRCNN):
        return _encoder_trunk(net.backbone.encoder)
    if isinstance(net, torchvision.models.ResNet):
        layers = [net.layer1, net.layer2, net.layer3, net.layer4]
        return Trunk("resnet", ResNetTrunk(net.conv1, net.bn1, net.relu, net.maxpool, layers))
    if isinstance(net, torchvision.models.MobileNetV3):
        return Trunk("mobilenet_v3", FeaturesTrunk(net.features))
    if isinstance(net, torchvision.models.EfficientNet):
        return Trunk("efficientnet", FeaturesTrunk(net.features))
    if isinstance(net, BasicCNN):
        return Trunk("basic_cnn", FeaturesTrunk(net.features))
    if isinstance(net, FastNet):
        return Trunk("fastnet", FastTrunk(net))
    if hasattr(net, "trunk") and hasattr(net, "family"):  # a pretraining network (cnnkit.models.selfsup)
        return Trunk(net.family, net.trunk)
    return _encoder_trunk(net)


@torch.no_grad()
def trunk_channels(trunk: nn.Module, in_chans: int, side: int = 64) -> tuple[int, int]:
    """(channels, stride) of the trunk's output, from one probe image of ``side`` pixels."""
    was_training = trunk.training
    trunk.eval()
    out = trunk(torch.zeros(1, in_chans, side, side))
    trunk.train(was_training)
    return int(out.shape[1]), max(1, round(side / out.shape[-1]))


def load_trunk(net: nn.Module, state: Mapping[str, torch.Tensor], family: str, origin: str) -> str:
    """Load a trunk's ``state`` (from ``trunk_of(...).module.state_dict()``) into ``net``'s trunk.

    The first convolution is adapted when only its input channels differ (RGB <-> grey, as timm does).
    Returns one line saying what was loaded and what starts at random; a trunk of another family or
    of other shapes raises CnnkitError naming the first tensor that does not fit.
    """
    trunk = trunk_of(net)
    if trunk.family != family:
        raise CnnkitError(f"{origin}: its encoder is a {family} network and this model's is a {trunk.family}; "
                          f"pretrain with a model of the {trunk.family} family (the same --model works)")
    own = trunk.module.state_dict()
    first_conv = next((k for k, v in own.items() if v.ndim == 4), "")
    loaded, problems, adapted = {}, [], ""
    for key, mine in own.items():
        theirs = state.get(key)
        if theirs is None:
            if not key.endswith(OPTIONAL):
                problems.append(f"{key} is missing")
            continue
        if key == first_conv and theirs.shape != mine.shape and theirs.shape[0] == mine.shape[0]:
            adapted = f", its first convolution adapted from {theirs.shape[1]} to {mine.shape[1]} input channels"
            theirs = adapt_in_chans(theirs, mine.shape[1])
        if theirs.shape != mine.shape:
            problems.append(f"{key} is {list(theirs.shape)}, this model needs {list(mine.shape)}")
            continue
        loaded[key] = theirs
    if problems:
        raise CnnkitError(f"{origin}: the {family} encoder does not fit this model ({len(problems)} tensors: "
                          f"{problems[0]}); pretrain with the same --model (or one of the same encoder and size)")
    trunk.module.load_state_dict(loaded, strict=False)
    n_loaded = sum(v.numel() for k, v in loaded.items() if not k.endswith(OPTIONAL))
    n_total = sum(p.numel() for p in net.parameters())
    rest = n_total - n_loaded
    return (f"{origin}: loaded the {family} encoder ({len(loaded)} tensors, {n_loaded / 1e6:.2f}M parameters"
            f"{adapted}); "
            f"the rest ({rest / 1e6:.2f}M parameters: decoder and heads) starts at random")


def read_cnnkit_checkpoint(path: str) -> dict | None:
    """A cnnkit checkpoint's contents (loaded with ``weights_only``), or None for any other weights file."""
    from pathlib import Path

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
    from cnnkit.meta import ModelMeta
    from cnnkit.models.wrapper import build_image_model

    meta = ModelMeta.from_dict(ckpt["meta"], origin=path)
    source = build_image_model(meta)
    try:
        source.load_state_dict(ckpt["model"])
    except RuntimeError as e:
        raise CnnkitError(f"{path}: weights do not fit {meta.model} ({str(e).splitlines()[0]})") from None
    trunk = trunk_of(source.net)
    return load_trunk(net, trunk.module.state_dict(), trunk.family, path)


def embed_images(model: nn.Module, images: list[Image.Image]) -> torch.Tensor:
    """Embeddings ``(N, D)`` (float32, CPU) of PIL images by an ``ImageModel`` of any task: its trunk's output
    averaged over space, on the image resized to the model's input side."""
    from cnnkit.data.images import image_to_array

    meta = model.meta
    arrays = [torch.from_numpy(image_to_array(im, meta.in_chans, meta.input_side, meta.pixel_max))
              .permute(2, 0, 1) for im in images]
    batch = torch.stack(arrays).to(next(model.parameters()).device)
    with torch.no_grad():
        vectors = trunk_of(model.net).module(model.normalize(batch)).float().mean((2, 3)).cpu()
    if not bool(torch.isfinite(vectors).all()):  # a diverged model's: embeddings.csv was full of inf
        raise CnnkitError(f"{meta.model}: the model computes NaN or infinite embeddings (its weights diverged in "
                          "training); train again with a lower --lr or --grad-clip")
    return vectors

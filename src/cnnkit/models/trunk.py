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

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import torch
import torchvision
from torch import nn
from torchvision.models.detection.generalized_rcnn import GeneralizedRCNN

from cnnkit.errors import CnnkitError
from cnnkit.models.features import EncoderTrunk, FeaturesTrunk, ResNetTrunk, Trunk  # noqa: F401 - re-exported
from cnnkit.models.timm_models import TimmTrunk
from cnnkit.models.torchvision_models import adapt_in_chans

if TYPE_CHECKING:
    from PIL import Image

# buffers a trunk may lack or gain between normalisations (BatchNorm's statistics; GroupNorm has none)
OPTIONAL = ("running_mean", "running_var", "num_batches_tracked")


def _torchvision_detector(net: GeneralizedRCNN) -> Trunk:
    """A detector in torchvision's own layout (the COCO weights: ``body``), else cnnkit's encoder + FPN."""
    if not hasattr(net.backbone, "body"):
        return trunk_of(net.backbone)
    body = net.backbone.body
    layers = [body.layer1, body.layer2, body.layer3, body.layer4]
    return Trunk("resnet", ResNetTrunk(body.conv1, body.bn1, body.relu, body.maxpool, layers))


# networks of other libraries, which cannot say their trunk themselves: found by class
FOREIGN: dict[type, Callable[[Any], Trunk]] = {
    GeneralizedRCNN: _torchvision_detector,
    torchvision.models.ResNet: lambda net: Trunk("resnet", ResNetTrunk(
        net.conv1, net.bn1, net.relu, net.maxpool, [net.layer1, net.layer2, net.layer3, net.layer4])),
    torchvision.models.MobileNetV3: lambda net: Trunk("mobilenet_v3", FeaturesTrunk(net.features)),
    torchvision.models.EfficientNet: lambda net: Trunk("efficientnet", FeaturesTrunk(net.features)),
}


def trunk_of(net: nn.Module) -> Trunk:
    """The trunk of a registered model's network (not the ``ImageModel`` around it); CnnkitError if none.

    cnnkit's networks and encoders say it (``cnnkit_trunk()``); timm's classifiers carry their name
    (``cnnkit_timm_name``); torchvision's are known by class (``FOREIGN``)."""
    own = getattr(net, "cnnkit_trunk", None)
    if callable(own):
        return own()
    if getattr(net, "cnnkit_timm_name", ""):  # timm/<name>
        return Trunk(f"timm/{net.cnnkit_timm_name}", TimmTrunk(net))
    for kind, take in FOREIGN.items():
        if isinstance(net, kind):
            return take(net)
    raise CnnkitError(f"{type(net).__name__}: a network cnnkit cannot take apart for pretraining")


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


def embed_images(model: nn.Module, images: list[Image.Image]) -> torch.Tensor:
    """Embeddings ``(N, D)`` (float32, CPU) of PIL images by an ``ImageModel`` of any task, on the image resized
    to the model's input side: the network's own ``embedding`` where it was trained to embed (metric learning),
    else its trunk's output averaged over space."""
    from cnnkit.data.images import image_to_array

    meta = model.meta
    arrays = [torch.from_numpy(image_to_array(im, meta.in_chans, meta.input_side, meta.pixel_max))
              .permute(2, 0, 1) for im in images]
    batch = torch.stack(arrays).to(next(model.parameters()).device)
    with torch.no_grad():
        own = getattr(model.net, "embedding", None)
        x = model.normalize(batch)
        vectors = (own(x) if callable(own) else trunk_of(model.net).module(x).mean((2, 3))).float().cpu()
    if not bool(torch.isfinite(vectors).all()):  # a diverged model's: embeddings.csv was full of inf
        raise CnnkitError(f"{meta.model}: the model computes NaN or infinite embeddings (its weights diverged in "
                          "training); train again with a lower --lr or --grad-clip")
    return vectors

"""Segmentation models composed from parts: encoder -> decoder -> head.

Registered as ``<architecture>_<encoder>``: ``unet_resnet18``, ``fcn8s_basic``,
``deeplabv3plus_mobilenet_v3_large``, ``segnet_vgg16``, ... Each maps images ``(N, in_chans, H, W)``
of any size to logits ``(N, num_classes, H, W)``; ``num_classes=1`` is the binary (sigmoid) head.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from cnnkit.errors import CnnkitError
from cnnkit.models.decoders import (
    DeepLabV3PlusDecoder,
    FCNDecoder,
    ScoreUpsample,
    SegNetDecoder,
    UNetDecoder,
    check_upsample,
)
from cnnkit.models.encoders import build_encoder
from cnnkit.models.features import Trunk
from cnnkit.models.registry import SEGMENTER, register_model

UNET_STRIDES = [2, 4, 8, 16, 32]  # the U-Net decoder doubles five times back to full size

DIVISOR = 32  # inputs are padded to a multiple of the deepest stride, so any size works


class SegmentationModel(nn.Module):
    """``head(decoder(encoder(x)))``, with padding to a multiple of 32 and the output cropped back."""

    def __init__(self, encoder: nn.Module, decoder: nn.Module, head: nn.Module):
        super().__init__()
        self.encoder, self.decoder, self.head = encoder, decoder, head

    def cnnkit_trunk(self) -> Trunk:
        return self.encoder.cnnkit_trunk()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        pad_h, pad_w = -h % DIVISOR, -w % DIVISOR
        if pad_h or pad_w or torch.jit.is_tracing():  # traced (ONNX export): padding follows the input's size
            x = F.pad(x, (0, pad_w, 0, pad_h))  # zeros: the mean colour, as inputs are normalised
        if getattr(self.decoder, "needs_indices", False):
            features, indices, sizes = self.encoder.forward_with_indices(x)
            y = self.decoder(features, indices, sizes)
        else:
            y = self.decoder(self.encoder(x))
        return self.head(y)[..., :h, :w]


def make_head(cin: int, num_classes: int, factor: int, upsample: str) -> nn.Module:
    """1x1 class scores, upsampled by ``factor`` to the input's resolution."""
    return nn.Sequential(nn.Conv2d(cin, num_classes, 1), ScoreUpsample(num_classes, factor, upsample))


def _unet(encoder: nn.Module, num_classes: int, upsample: str, decoder_channels: Sequence[int] = ()) -> tuple:
    decoder = UNetDecoder(encoder.out_channels, tuple(decoder_channels) or (256, 128, 64, 32, 16), upsample)
    return decoder, make_head(decoder.out_channels, num_classes, 1, upsample)


def _deeplab(encoder: nn.Module, num_classes: int, upsample: str) -> tuple:
    decoder = DeepLabV3PlusDecoder(encoder.out_channels, encoder.strides, upsample)
    return decoder, make_head(decoder.out_channels, num_classes, decoder.out_stride, upsample)


def _fcn(variant: int) -> Callable:
    def build(encoder: nn.Module, num_classes: int, upsample: str) -> tuple:
        return FCNDecoder(encoder.out_channels, num_classes, variant, upsample), nn.Identity()
    return build


def _segnet(encoder: nn.Module, num_classes: int, upsample: str) -> tuple:
    if upsample != "transpose":
        raise CnnkitError("segnet upsamples by unpooling; it takes no 'upsample' option")
    decoder = SegNetDecoder(encoder.out_channels, [len(s) for s in encoder.stages])
    return decoder, nn.Conv2d(decoder.out_channels, num_classes, 1)


# architecture -> (decoder+head builder, encoder output stride, encoders it composes with, description)
ARCHITECTURES: dict[str, tuple[Callable, int, tuple[str, ...], str]] = {
    "unet": (_unet, 32, ("basic", "resnet18", "resnet34", "resnet50", "mobilenet_v3_small", "mobilenet_v3_large"),
             "U-Net: skip connections, transposed-convolution upsampling"),
    "fcn32s": (_fcn(32), 32, ("basic", "vgg16", "resnet18", "resnet34", "resnet50", "mobilenet_v3_large"),
               "FCN-32s: scores upsampled 32x by deconvolution"),
    "fcn16s": (_fcn(16), 32, ("basic", "vgg16", "resnet18", "resnet34", "resnet50", "mobilenet_v3_large"),
               "FCN-16s: stride-32 and stride-16 scores fused"),
    "fcn8s": (_fcn(8), 32, ("basic", "vgg16", "resnet18", "resnet34", "resnet50", "mobilenet_v3_large"),
              "FCN-8s: stride-32, 16 and 8 scores fused"),
    "deeplabv3plus": (_deeplab, 16, ("basic", "resnet18", "resnet34", "resnet50", "mobilenet_v3_small",
                                     "mobilenet_v3_large"), "DeepLabV3+: atrous encoder, ASPP, low-level fusion"),
    "segnet": (_segnet, 32, ("basic", "vgg16"), "SegNet: unpooling with the encoder's max-pool indices"),
}


def build_segmentation_model(arch: str, encoder_name: str, num_classes: int, in_chans: int = 3,
                             pretrained: str = "", upsample: str = "transpose", **kw) -> SegmentationModel:
    """Compose ``arch`` on ``encoder_name``. ``kw``: ``decoder_channels`` (unet), and for the basic
    encoder ``preset`` (small/medium/vgg16), ``widths``, ``convs``, ``norm``."""
    builder, output_stride, _, _ = ARCHITECTURES[arch]
    check_upsample(upsample)
    decoder_kw = {k: kw.pop(k) for k in ("decoder_channels",) if k in kw}
    if kw and encoder_name not in ("basic", "vgg16"):
        raise CnnkitError(f"{arch}_{encoder_name}: unknown options {sorted(kw)}; check model_args")
    encoder = build_encoder(encoder_name, in_chans, pretrained=pretrained, output_stride=output_stride, **kw)
    if arch == "unet" and list(encoder.strides) != UNET_STRIDES:  # a timm encoder of four levels, say
        raise CnnkitError(f"unet_{encoder_name}: U-Net needs features at strides {UNET_STRIDES}, and this encoder "
                          f"has {list(encoder.strides)}; pick fcn8s_ or deeplabv3plus_{encoder_name}, or an encoder "
                          "with five levels (timm's resnet, efficientnet, regnet, mobilenetv3)")
    decoder, head = builder(encoder, num_classes, upsample, **decoder_kw)
    return SegmentationModel(encoder, decoder, head)


def _register(arch: str, encoder_name: str, description: str) -> None:
    def builder(num_classes: int = 2, in_chans: int = 3, pretrained: str = "", upsample: str = "transpose",
                **kw) -> nn.Module:
        return build_segmentation_model(arch, encoder_name, num_classes, in_chans, pretrained, upsample, **kw)

    builder.__doc__ = f"{description}; {encoder_name} encoder."
    register_model(f"{arch}_{encoder_name}", kind=SEGMENTER)(builder)


for _arch, (_builder, _stride, _encoders, _description) in ARCHITECTURES.items():
    for _encoder in _encoders:
        _register(_arch, _encoder, _description)

"""Click models: any registered segmenter, given the user's clicks and its previous answer beside the image.

``clicker`` is RITM's network (Sofiiuk, Petrov and Konushin, "Reviving Iterative Training with Mask Guidance
for Interactive Segmentation", 2021) on any of cnnkit's segmenters: three guide maps (disks around the positive
clicks, disks around the negative clicks, the previous mask) enter as extra input channels of the segmenter's
first convolution (their "Conv1E" early fusion), and one sigmoid output is the clicked object. The guide maps
are not normalised (0..1); the image is, by the ``ImageModel`` around the network.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from cnnkit.errors import CnnkitError
from cnnkit.models.features import Trunk
from cnnkit.models.registry import CLICKER, SEGMENTER, create_model, get_entry, register_model
from cnnkit.models.torchvision_models import adapt_in_chans

GUIDE_CHANNELS = 3  # positive disks, negative disks, previous mask


class ClickNet(nn.Module):
    """``forward(images (N, C, H, W) normalised, guide (N, 3, H, W) 0..1 or None) -> logits (N, K, H, W)``.

    ``guide`` None stands for no click and no previous mask (zeros), so that tools which run a network on images
    alone (summaries, diagrams, receptive fields) run this one. ``cnnkit_trunk()`` is the segmenter's, taking
    images alone as well: their guide channels are filled with zeros."""

    def __init__(self, segmenter: nn.Module, in_chans: int, guide_channels: int = GUIDE_CHANNELS):
        super().__init__()
        self.segmenter = segmenter
        self.in_chans, self.guide_channels = in_chans, guide_channels

    def forward(self, images: torch.Tensor, guide: torch.Tensor | None = None) -> torch.Tensor:
        if images.shape[1] != self.in_chans:
            raise CnnkitError(f"clicker: images of {images.shape[1]} channels, this model takes {self.in_chans}")
        if guide is None:
            guide = images.new_zeros((images.shape[0], self.guide_channels, *images.shape[-2:]))
        elif guide.shape[0] != images.shape[0] or guide.shape[-2:] != images.shape[-2:] or \
                guide.shape[1] != self.guide_channels:
            raise CnnkitError(f"clicker: guide of shape {tuple(guide.shape)} for images of shape "
                              f"{tuple(images.shape)}; pass (N, {self.guide_channels}, H, W) maps of the images' size")
        return self.segmenter(torch.cat([images, guide.to(images.dtype)], 1))

    def cnnkit_trunk(self) -> Trunk:
        trunk = self.segmenter.cnnkit_trunk()
        if not getattr(trunk.module, "_cnnkit_guide_fill", False):
            trunk.module.register_forward_pre_hook(_fill_guide(self.in_chans, self.guide_channels))
            trunk.module._cnnkit_guide_fill = True  # type: ignore[assignment]  # one hook, however often asked
        return trunk

    def init_from_data(self, images: torch.Tensor) -> None:
        """Data-dependent initialisation of the segmenter, where it has one (no guide: zeros)."""
        init = getattr(self.segmenter, "init_from_data", None)
        if init is not None:
            init(torch.cat([images, images.new_zeros((images.shape[0], self.guide_channels, *images.shape[-2:]))], 1))


def _fill_guide(in_chans: int, guide_channels: int) -> Any:
    """A forward pre-hook: images of ``in_chans`` channels get zero guide channels, so that the trunk alone takes
    images as any other model's does (its stride probed, its features embedded); full inputs pass unchanged."""
    def hook(module: nn.Module, args: tuple) -> tuple | None:
        if not args or not isinstance(args[0], torch.Tensor) or args[0].ndim != 4 or args[0].shape[1] != in_chans:
            return None
        x = args[0]
        return (torch.cat([x, x.new_zeros((x.shape[0], guide_channels, *x.shape[-2:]))], 1), *args[1:])
    return hook


def first_conv(net: nn.Module, in_channels: int) -> nn.Conv2d | None:
    """The first convolution of ``net`` (in the order its modules were made) that takes ``in_channels``."""
    return next((m for m in net.modules() if isinstance(m, nn.Conv2d) and m.in_channels == in_channels), None)


@torch.no_grad()
def quiet_guide(net: nn.Module, in_chans: int, guide_channels: int = GUIDE_CHANNELS) -> bool:
    """Restore the pretrained image filters of the first convolution and start its guide filters afresh: loaders
    of RGB weights tile them over all input channels, scaled by 3 / channels (``adapt_in_chans``), which would
    halve the image's response and read clicks with colour filters. The guide filters get PyTorch's own
    convolution initialisation (not zeros: with ``--freeze-epochs`` the first convolution stays fixed a while,
    and the clicks must still reach the decoder). False when no such convolution is found."""
    conv = first_conv(net, in_chans + guide_channels)
    if conv is None:
        return False
    total = in_chans + guide_channels
    rgb = conv.weight[:, :3] * (total / 3)  # the tiling's first three channels, unscaled
    conv.weight[:, :in_chans] = adapt_in_chans(rgb, in_chans)
    fresh = torch.empty_like(conv.weight)
    nn.init.kaiming_uniform_(fresh, a=math.sqrt(5))  # nn.Conv2d's reset_parameters, over the full fan-in
    conv.weight[:, in_chans:] = fresh[:, in_chans:]
    return True


@register_model("clicker", kind=CLICKER)
def clicker(num_classes: int = 1, in_chans: int = 3, segmenter: str = "unet_basic",
            segmenter_args: dict | None = None, pretrained: str = "", guide_channels: int = GUIDE_CHANNELS
            ) -> nn.Module:
    """Interactive segmentation: a segmenter given the clicks and previous mask (RITM); segmenter: its name."""
    if get_entry(segmenter).kind != SEGMENTER:
        raise CnnkitError(f"clicker: segmenter '{segmenter}' is a {get_entry(segmenter).kind} model, not a segmenter; "
                          "pick one such as unet_basic or unet_resnet18 (`cnnkit models --task segment`)")
    args = dict(segmenter_args or {})
    if pretrained:
        args["pretrained"] = pretrained
    net = create_model(segmenter, num_classes=num_classes, in_chans=in_chans + guide_channels, **args)
    if pretrained:
        quiet_guide(net, in_chans, guide_channels)
    return ClickNet(net, in_chans, guide_channels)

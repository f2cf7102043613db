"""The click network: a segmenter given clicks and its previous mask, whose trunk still takes images alone."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from cnnkit.errors import CnnkitError
from cnnkit.models import create_model
from cnnkit.models.click import first_conv, quiet_guide
from cnnkit.models.torchvision_models import adapt_in_chans
from cnnkit.models.trunk import trunk_channels, trunk_of

TINY = {"widths": [8, 8, 16, 16, 16], "decoder_channels": [16, 8, 8, 8, 8]}


@pytest.mark.parametrize("segmenter, args", [("unet_basic", TINY), ("deeplabv3plus_mobilenet_v3_small", {})])
@pytest.mark.parametrize("in_chans", [1, 3])
def test_logits_at_the_input_size_with_and_without_a_guide(segmenter, args, in_chans):
    net = create_model("clicker", num_classes=1, in_chans=in_chans, segmenter=segmenter, segmenter_args=args).eval()
    x = torch.randn(2, in_chans, 40, 52)
    with torch.no_grad():
        plain, guided = net(x), net(x, torch.rand(2, 3, 40, 52))
        zeros = net(x, torch.zeros(2, 3, 40, 52))
    assert plain.shape == guided.shape == (2, 1, 40, 52)
    assert torch.equal(plain, zeros) and not torch.equal(plain, guided)  # no guide: no click, no previous mask
    trunk = trunk_of(net)
    assert trunk_channels(trunk.module, in_chans)[0] > 0  # the trunk takes images alone (stride probes, embeddings)


def test_guides_of_another_shape_and_non_segmenters_are_refused():
    net = create_model("clicker", num_classes=1, segmenter_args=TINY)
    with pytest.raises(CnnkitError, match="guide of shape"):
        net(torch.randn(1, 3, 32, 32), torch.zeros(1, 2, 32, 32))
    with pytest.raises(CnnkitError, match="not a segmenter"):
        create_model("clicker", num_classes=1, segmenter="resnet18")


def test_pretrained_image_filters_are_restored_and_guide_filters_start_afresh():
    rgb = torch.randn(8, 3, 3, 3)
    net = nn.Sequential(nn.Conv2d(6, 8, 3), nn.ReLU(), nn.Conv2d(8, 6, 1))
    with torch.no_grad():
        net[0].weight.copy_(adapt_in_chans(rgb, 6))  # as an RGB loader fills a wider first convolution
    assert quiet_guide(net, 3)
    guide = net[0].weight[:, 3:]
    assert torch.allclose(net[0].weight[:, :3], rgb) and not torch.allclose(guide, rgb / 2)
    assert guide.abs().max() <= 1 / 54 ** 0.5 + 1e-6  # PyTorch's initialisation bound for 6 x 3 x 3 inputs
    assert first_conv(net, 6) is net[0] and not quiet_guide(nn.Sequential(nn.Conv2d(3, 4, 1)), 3)

"""Encoder hand-over between model families: a trunk trained in one model starts another's."""

from __future__ import annotations

import pytest
import torch

from cnnkit.errors import CnnkitError
from cnnkit.models import create_model
from cnnkit.models.selfsup import PretrainNet
from cnnkit.models.trunk import load_trunk, trunk_of

# (source, target): each family's encoder moves between the tasks that use it
PAIRS = [
    ("resnet18", "unet_resnet18"),
    ("unet_resnet18", "maskrcnn_resnet18"),
    ("maskrcnn_resnet18", "resnet18"),
    ("resnet18", "fasterrcnn_resnet18"),
    ("mobilenet_v3_large", "deeplabv3plus_mobilenet_v3_large"),
    ("fcn8s_mobilenet_v3_large", "maskrcnn_mobilenet_v3_large"),
    ("mobilenet_v3_small", "unet_mobilenet_v3_small"),
    ("unet_basic", "segnet_basic"),
    ("basic_cnn", "basic_cnn"),
    ("fastnet_tiny", "fastnet_tiny"),
    ("efficientnet_b0", "efficientnet_b0"),
]


def build(name: str, in_chans: int = 3) -> torch.nn.Module:
    return create_model(name, num_classes=2, in_chans=in_chans)


@pytest.mark.parametrize("source, target", PAIRS)
def test_trunk_moves_between_models(source, target):
    torch.manual_seed(0)
    src = trunk_of(build(source))
    torch.manual_seed(1)
    net = build(target)
    line = load_trunk(net, src.module.state_dict(), src.family, "ckpt.pt")
    assert f"loaded the {src.family} encoder" in line
    mine = trunk_of(net).module.state_dict()
    theirs = src.module.state_dict()
    compared = [k for k in mine if k in theirs and not k.endswith("num_batches_tracked")]
    assert compared and all(torch.equal(mine[k], theirs[k]) for k in compared)


def test_a_pretraining_network_hands_over_its_trunk():
    torch.manual_seed(0)
    pre = PretrainNet(build("resnet18"), 3, "simclr")
    net = build("unet_resnet18")
    load_trunk(net, trunk_of(pre).module.state_dict(), "resnet", "pre.pt")
    assert torch.equal(net.encoder.stem[0].weight, pre.trunk.conv1.weight)


def test_first_convolution_adapts_to_the_number_of_channels():
    src = trunk_of(build("resnet18", in_chans=3))
    net = build("resnet18", in_chans=1)
    load_trunk(net, src.module.state_dict(), "resnet", "rgb.pt")
    assert torch.allclose(net.conv1.weight, src.module.conv1.weight.sum(1, keepdim=True))


@pytest.mark.parametrize("source, target, words", [
    ("resnet18", "resnet34", "does not fit"),
    ("resnet18", "mobilenet_v3_large", "resnet network and this model's is a mobilenet_v3"),
    ("basic_cnn", "unet_basic", "basic_cnn network"),
])
def test_a_mismatch_is_refused_in_one_line(source, target, words):
    src = trunk_of(build(source))
    with pytest.raises(CnnkitError, match=words) as info:
        load_trunk(build(target), src.module.state_dict(), src.family, "x.pt")
    assert "\n" not in str(info.value) and "x.pt" in str(info.value)


@pytest.mark.parametrize("method", ["simclr", "vicreg", "mae"])
def test_pretraining_network_outputs(method):
    net = PretrainNet(build("fastnet_tiny"), 3, method)
    views = torch.rand(4, 2 if method != "mae" else 1, 3, 32, 32)
    out = net(views)
    if method == "mae":
        assert out["recon"].shape == (4, 3, 32, 32) and out["mask"].shape == (4, 1, 32, 32)
        assert 0.2 < float(out["mask"].mean()) < 0.8
    else:
        assert out["z"].shape[:2] == (4, 2)
    net.eval()
    plain_and_views = torch.rand(3, 3 if method != "mae" else 2, 3, 32, 32)
    assert net(plain_and_views)["embedding"].shape == (3, 96)

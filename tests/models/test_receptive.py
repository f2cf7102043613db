"""Receptive fields measured by gradients, against hand values (Araujo et al., Distill 2019), and the trunk's
stages they are reported for."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from cnnkit.errors import CnnkitError
from cnnkit.models import create_model
from cnnkit.models.receptive import positive_copy, receptive_fields, row_fields
from cnnkit.models.stages import trunk_stages
from cnnkit.models.summary import format_table, layer_table
from cnnkit.models.trunk import trunk_of


def conv(stride: int = 1, k: int = 3) -> nn.Conv2d:
    return nn.Conv2d(2, 2, k, stride=stride, padding=k // 2)


@pytest.mark.parametrize(("layers", "expected"), [
    ([conv()], 3),
    ([conv(), conv()], 5),
    ([conv(stride=2), conv()], 7),  # 1 + 2 * 1 + 2 * 2
    ([conv(), nn.MaxPool2d(2)], 4),
    ([conv(), nn.MaxPool2d(3, stride=1, padding=1, dilation=1)], 5),
    ([conv(), nn.MaxPool2d(3, stride=2, dilation=2, padding=2)], 7),  # a dilated pool: 3 + 2 * 2
    ([conv(), nn.BatchNorm2d(2), nn.ReLU(), nn.MaxPool2d(2, ceil_mode=True), conv()], 8),
    ([nn.Conv2d(2, 2, 3, padding=2, dilation=2)], 5),
    ([nn.Conv2d(2, 4, 3, padding=1), nn.Conv2d(4, 4, 3, padding=1, groups=4)], 5),  # depthwise
    ([conv(stride=2), nn.ConvTranspose2d(2, 2, 2, stride=2)], 3),
])
def test_hand_values(layers, expected):
    net = nn.Sequential(*layers)
    fields = receptive_fields(net, (1, 2, 33, 33), [str(len(layers) - 1)])
    assert fields == {str(len(layers) - 1): expected} and not fields.clipped


def test_the_copy_keeps_shapes_and_leaves_the_network_alone():
    net = nn.Sequential(conv(), nn.BatchNorm2d(2), nn.MaxPool2d(2, ceil_mode=True), conv(stride=2))
    before = [p.detach().clone() for p in net.parameters()]
    x = torch.randn(1, 2, 15, 15)
    assert positive_copy(net)(x).shape == net(x).shape
    assert all(torch.equal(a, b) for a, b in zip(before, net.parameters()))


class TwoPaths(nn.Module):
    """A 3x3 path and a 7x7 path added: the field is the wider one, which a walk down one path misses."""

    def __init__(self) -> None:
        super().__init__()
        self.narrow, self.wide = conv(), conv(k=7)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.narrow(x) + self.wide(x)


def test_branches_count():
    assert receptive_fields(TwoPaths(), (1, 2, 32, 32), ["", "narrow"]) == {"": 7, "narrow": 3}


def test_resnet18_against_the_published_values():
    net = create_model("resnet18", num_classes=2, in_chans=3)
    names = ["conv1", "maxpool", "layer1", "layer2", "layer3", "layer4"]
    fields = receptive_fields(net, (1, 3, 512, 512), names)
    assert fields == {"conv1": 7, "maxpool": 11, "layer1": 43, "layer2": 99, "layer3": 211, "layer4": 435}
    assert not fields.clipped
    small = receptive_fields(net, (1, 3, 224, 224), ["layer3", "layer4"])
    assert small["layer3"] == 211 and small.clipped == {"layer4"} and small["layer4"] <= 224
    assert small.label("layer4") == f">={small['layer4']}" and small.label("layer3") == "211"
    assert small.label("fc") == ""


def test_global_pooling_and_heads_have_none():
    net = nn.Sequential(conv(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(2, 3))
    assert receptive_fields(net, (1, 2, 16, 16), ["0", "1", "3"]) == {"0": 3}


class SqueezeExcite(nn.Module):
    """timm's gate: a functional global mean scales the channels (its field would be the whole image)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(x.mean((2, 3), keepdim=True))


def test_gates_and_global_pools_add_no_field():
    net = nn.Sequential(conv(), SqueezeExcite(), conv())
    assert receptive_fields(net, (1, 2, 32, 32), ["2"]) == {"2": 5}
    mobile = create_model("mobilenet_v3_small", num_classes=2, in_chans=3)  # torchvision's gates: adaptive pools
    assert receptive_fields(mobile, (1, 3, 128, 128), ["features.3"]) == {"features.3": 31}


def test_unknown_name():
    with pytest.raises(CnnkitError, match="layer9"):
        receptive_fields(nn.Sequential(conv()), (1, 2, 8, 8), ["layer9"])


def test_stages_of_trunks():
    resnet = create_model("resnet18", num_classes=2, in_chans=3).eval()
    assert [s.name for s in trunk_stages(resnet, (1, 3, 64, 64))] == ["relu", "layer1", "layer2", "layer3", "layer4"]
    assert not any(m.training for m in resnet.modules())  # each module's mode is kept, whatever the trunk's
    resnet.train()
    trunk_stages(resnet, (1, 3, 64, 64))
    assert all(m.training for m in resnet.modules())
    basic = create_model("basic_cnn", num_classes=2, in_chans=1)
    stages = trunk_stages(basic, (1, 1, 28, 28))
    assert [s.name for s in stages] == ["features.0", "features.2", "features.3"]  # the last of each resolution
    fields = receptive_fields(trunk_of(basic).module, (1, 1, 28, 28), [s.target for s in stages])
    assert [fields[s.target] for s in stages] == [3, 8, 10]


def test_stages_of_an_encoder_returning_maps():
    """SegNet's encoder returns the output of one max-pool called five times: each call is a stage."""
    net = create_model("segnet_basic", num_classes=2, in_chans=3)
    stages = trunk_stages(net, (1, 3, 64, 64))
    assert [s.name for s in stages] == [f"encoder.pool:{i}" for i in range(5)]
    fields = receptive_fields(net, (1, 3, 256, 256), [s.name for s in stages[:4]])
    assert list(fields.values()) == [4, 14, 34, 74] and not fields.clipped
    unet = create_model("unet_resnet18", num_classes=2, in_chans=3)  # its trunk is ResNet's: named in the net
    assert [s.name for s in trunk_stages(unet, (1, 3, 64, 64))] == [
        "encoder.stem.2", "encoder.layers.0", "encoder.layers.1", "encoder.layers.2", "encoder.layers.3"]


def test_layer_table_column():
    model = create_model("basic_cnn", num_classes=10, in_chans=1, input_size=28)
    rows = layer_table(model, (1, 1, 28, 28))
    by_name = {r.name: r.rf for r in rows}
    assert by_name["features.0.0"] == "3" and by_name["features.1"] == "4" and by_name["features.3"] == "10"
    assert by_name["features.0.1"] == "" and by_name["classifier.5"] == ""  # a norm; after the head's pooling
    text = format_table(rows, 0)
    assert " RF" in text.splitlines()[0] and "receptive field" in text
    assert "RF" not in format_table(layer_table(model, (1, 1, 28, 28), receptive=False), 0)


def test_row_fields_count_repeated_calls():
    """A module called twice (a ResNet block's ReLU) has a row per call; a stage's row is its last."""
    net = create_model("resnet18", num_classes=2, in_chans=3)
    rows = [(r.name, r.kind, r.out_shape) for r in layer_table(net, (1, 3, 64, 64), receptive=False)]
    labels = dict(zip([f"{n}#{i}" for i, (n, _k, _s) in enumerate(rows)], row_fields(net, (1, 3, 64, 64), rows)))
    relus = [label for key, label in labels.items() if key.startswith("layer1.1.relu#")]
    assert relus == ["", "43"]

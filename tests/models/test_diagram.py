"""Architecture diagrams: the blocks and edges found from one forward pass, and their SVG and PNG drawings."""

import xml.etree.ElementTree as ET
from functools import cache

import pytest

from cnnkit.errors import CnnkitError
from cnnkit.models import create_model
from cnnkit.models.diagram import architecture, diagram_svg, draw_diagram, edges

SHAPE = (1, 3, 32, 32)
SVG = "{http://www.w3.org/2000/svg}"


@cache
def net(name: str):
    return create_model(name, num_classes=3)


@cache
def blocks_of(name: str):
    return architecture(net(name), SHAPE)


@cache
def svg_of(name: str) -> str:
    return diagram_svg(net(name), SHAPE)


def svg_texts(svg: str) -> list[str]:
    root = ET.fromstring(svg)  # well-formed XML, or this raises
    assert root.tag == f"{SVG}svg"
    return [t.text or "" for t in root.iter(f"{SVG}text")]


# one of each family: plain CNNs, deep backbones, U-Net, SegNet and DeepLab decoders (FCN's below), a detector
@pytest.mark.parametrize("name", ["basic_cnn", "fastnet_tiny", "resnet18", "mobilenet_v3_small", "unet_basic",
                                  "segnet_basic", "deeplabv3plus_basic", "fasterrcnn_mobilenet_v3_small"])
def test_every_family_draws_to_svg_and_png(tmp_path, name):
    png = draw_diagram(net(name), SHAPE, tmp_path / "d.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    texts = svg_texts(svg_of(name))
    assert "input" in texts and "3×32×32" in texts
    blocks = blocks_of(name)
    assert 3 <= len(blocks) <= 16
    assert all(b.out_shape for b in blocks)  # every block shows its output shape
    assert all(b.shape_text in texts or b.shape_text.split()[0] in " ".join(texts) for b in blocks)


def test_plain_cnn_is_drawn_layer_by_layer():
    blocks = blocks_of("basic_cnn")
    assert [b.kind for b in blocks] == ["input", "conv", "pool", "conv", "pool", "pool", "flatten", "dropout", "fc",
                                        "dropout", "fc"]
    assert blocks[1].label == "conv 3×3, 32" and blocks[1].detail == "BN + ReLU" and blocks[1].out_shape == (32, 32, 32)
    assert blocks[-1].out_shape == (3,)
    assert {e.kind for e in edges(blocks)} == {"sequential"}
    texts = svg_texts(svg_of("basic_cnn"))
    for label in ("conv 3×3, 64", "max-pool 2×2", "fc 128", "dropout 0.5", "32×32×32"):
        assert label in texts


def test_deep_backbone_is_drawn_by_stages():
    blocks = architecture(net("resnet18"), (3, 32, 32))  # (C, H, W) works too
    assert [b.kind for b in blocks].count("stage") == 5
    assert blocks[2].detail == "max-pool 3×3 + 2× BasicBlock" and blocks[5].out_shape == (512, 1, 1)
    assert [b.kind for b in blocks[-2:]] == ["pool", "fc"]


def test_unet_skips_join_maps_of_one_resolution():
    blocks = blocks_of("unet_basic")
    skips = [e for e in edges(blocks) if e.kind == "skip"]
    assert len(skips) == 4
    for e in skips:
        source, target = blocks[e.source], blocks[e.target]
        assert source.kind == "encoder stage" and target.kind == "decoder stage"
        assert source.out_shape[1:] == target.out_shape[1:]
    assert "deconv 2×2" in blocks[skips[0].target].detail
    assert "skip connection" in svg_texts(svg_of("unet_basic"))


def test_segnet_indices_go_from_each_pool_to_its_unpool():
    blocks = blocks_of("segnet_basic")
    indices = sorted((e.source, e.target) for e in edges(blocks) if e.kind == "indices")
    encoders = [b.index for b in blocks if b.kind == "encoder stage"]
    decoders = [b.index for b in blocks if b.kind == "decoder stage"]
    assert indices == sorted(zip(encoders, reversed(decoders)))  # the deepest pool feeds the first unpool
    assert all(blocks[d].detail.startswith("unpool") for d in decoders)
    assert not any(e.kind == "skip" for e in edges(blocks))
    assert "max-pool indices" in svg_texts(svg_of("segnet_basic"))


def test_fcn_and_deeplab_skips():
    fcn = blocks_of("fcn8s_basic")
    assert len([e for e in edges(fcn) if e.kind == "skip"]) == 2  # the stride-16 and stride-8 scores
    deeplab = blocks_of("deeplabv3plus_basic")
    (skip,) = [e for e in edges(deeplab) if e.kind == "skip"]
    assert deeplab[skip.source].out_shape[1:] == (8, 8)  # the stride-4 low-level features


def test_detector_parts():
    blocks = blocks_of("fasterrcnn_mobilenet_v3_small")
    kinds = [b.kind for b in blocks]
    assert kinds.index("encoder stage") < kinds.index("fpn") < kinds.index("rpn") < kinds.index("roi pool")
    assert blocks[kinds.index("rpn")].note == "proposals"
    assert blocks[-1].note == "per RoI" and blocks[-1].out_shape == (4,)  # 3 classes + background
    assert any(e.kind == "skip" and blocks[e.target].kind == "fpn" for e in edges(blocks))


def test_the_network_is_left_as_it_was():
    model = create_model("basic_cnn", num_classes=3)
    model.train()
    architecture(model, SHAPE)
    assert model.training
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in model.modules())


def test_svg_file_is_the_svg_text(tmp_path):
    path = draw_diagram(net("basic_cnn"), SHAPE, tmp_path / "sub" / "d.SVG")
    assert path.read_text() == svg_of("basic_cnn")  # the same network gives the same file


def test_bad_suffix_and_shape(tmp_path):
    with pytest.raises(CnnkitError, match=r"\.svg or \.png, not '\.pdf'"):
        draw_diagram(net("basic_cnn"), SHAPE, tmp_path / "d.pdf")
    assert not (tmp_path / "d.pdf").exists()
    with pytest.raises(CnnkitError, match="input channels"):
        architecture(net("basic_cnn"), (1, 5, 64, 64))
    with pytest.raises(CnnkitError, match=r"\(N, C, H, W\)"):
        architecture(net("basic_cnn"), (64, 64))


def test_each_kind_has_its_own_colour():
    """A legend entry names one kind: two kinds of one colour (conv and encoder stage were) cannot be told apart."""
    from cnnkit.models.diagram_draw import COLOURS

    assert len(set(COLOURS.values())) == len(COLOURS)

"""Every registered segmentation model: shapes, forward and backward, odd input sizes; and the parts."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from cnnkit.errors import CnnkitError
from cnnkit.models import create_model, list_models
from cnnkit.models.decoders import ScoreUpsample
from cnnkit.models.encoders import ENCODERS, build_encoder
from cnnkit.models.registry import SEGMENTER


@pytest.mark.parametrize("name", list_models(SEGMENTER))
def test_forward_backward_odd_sizes(name):
    torch.manual_seed(0)
    model = create_model(name, num_classes=3, in_chans=1)
    x = torch.randn(2, 1, 37, 45)  # neither side a multiple of 32
    out = model(x)
    assert out.shape == (2, 3, 37, 45)
    F.cross_entropy(out, torch.randint(0, 3, (2, 37, 45))).backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert grads and all(g is not None and torch.isfinite(g).all() for g in grads)


@pytest.mark.parametrize("name", ["unet_resnet18", "segnet_basic", "fcn8s_basic", "deeplabv3plus_mobilenet_v3_small"])
def test_binary_head_and_rgb(name):
    model = create_model(name, num_classes=1, in_chans=3).eval()
    assert model(torch.randn(1, 3, 64, 96)).shape == (1, 1, 64, 96)


@pytest.mark.parametrize("name", sorted(ENCODERS))
@pytest.mark.parametrize("output_stride", [32, 16])
def test_encoders_report_channels_and_strides(name, output_stride):
    encoder = build_encoder(name, 3, output_stride=output_stride).eval()
    features = encoder(torch.randn(1, 3, 64, 64))
    assert [f.shape[1] for f in features] == encoder.out_channels
    assert [64 // f.shape[-1] for f in features] == encoder.strides
    assert encoder.strides[-1] == output_stride


def test_segnet_unpools_and_fcn_deconvolves():
    segnet = create_model("segnet_basic", num_classes=4)
    assert segnet.decoder.needs_indices
    assert not any(isinstance(m, nn.ConvTranspose2d) for m in segnet.modules())
    fcn = create_model("fcn8s_resnet18", num_classes=4)
    assert sum(isinstance(m, nn.ConvTranspose2d) for m in fcn.modules()) == 3  # 2x, 2x, 8x


def test_bilinear_upsampling_option():
    model = create_model("unet_resnet18", num_classes=2, upsample="bilinear")
    assert not any(isinstance(m, nn.ConvTranspose2d) for m in model.modules())
    with pytest.raises(CnnkitError, match="upsample"):
        create_model("unet_resnet18", num_classes=2, upsample="cubic")


@pytest.mark.parametrize("factor", [2, 4, 8])
def test_deconvolution_starts_as_bilinear_interpolation(factor):
    x = torch.randn(1, 3, 8, 8)
    learned = ScoreUpsample(3, factor, "transpose")(x)
    fixed = F.interpolate(x, scale_factor=factor, mode="bilinear", align_corners=False)
    inner = slice(factor, -factor)  # borders differ: the deconvolution pads with zeros
    assert learned.shape == fixed.shape
    assert torch.allclose(learned[..., inner, inner], fixed[..., inner, inner], atol=1e-5)


def test_unknown_model_options_are_errors():
    with pytest.raises(CnnkitError, match="unknown options"):
        create_model("unet_resnet18", num_classes=2, widths=(8, 8))
    small = create_model("unet_basic", num_classes=2, widths=(8, 16, 16, 32, 32), decoder_channels=(32, 16, 16, 8, 8))
    assert small(torch.randn(1, 3, 32, 32)).shape == (1, 2, 32, 32)

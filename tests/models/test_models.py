"""Every registered model gets forward, backward and shape tests for free."""

import pytest
import torch
from torch import nn

from cnnkit.errors import CnnkitError
from cnnkit.models import create_model, list_models, register_model
from cnnkit.models.registry import CLASSIFIER
from cnnkit.models.summary import count_flops, layer_table


@pytest.mark.parametrize("name", list_models(CLASSIFIER))
@pytest.mark.parametrize("in_chans", [1, 3])
def test_forward_backward_shapes(name, in_chans):
    torch.manual_seed(0)
    model = create_model(name, num_classes=5, in_chans=in_chans)
    x = torch.randn(2, in_chans, 33, 33)  # an odd size on purpose
    out = model(x)
    assert out.shape == (2, 5)
    out.sum().backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert grads and all(g is not None and torch.isfinite(g).all() for g in grads)


def test_duplicate_name_raises():
    with pytest.raises(ValueError, match="already registered"):
        register_model("resnet18")(lambda **kw: nn.Identity())


def test_unknown_name_suggests():
    with pytest.raises(CnnkitError, match="Did you mean 'resnet18'"):
        create_model("resnet81")


def test_basic_cnn_presets_and_options():
    tiny = create_model("basic_cnn", num_classes=3, in_chans=1, preset="tiny", input_size=28)
    large = create_model("basic_cnn", num_classes=3, in_chans=1, preset="large", input_size=28)
    assert sum(p.numel() for p in tiny.parameters()) < sum(p.numel() for p in large.parameters())
    plain = create_model("basic_cnn", num_classes=3, in_chans=1, norm="none", fc=[], dropout=0.0)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in plain.modules())
    assert plain(torch.randn(1, 1, 28, 28)).shape == (1, 3)
    with pytest.raises(CnnkitError, match="unknown preset"):
        create_model("basic_cnn", preset="huge")


def test_fastnet_whitening_decorrelates():
    torch.manual_seed(0)
    model = create_model("fastnet_small", num_classes=4, in_chans=3)
    images = torch.randn(64, 3, 16, 16).cumsum(-1) / 4  # strongly correlated neighbouring pixels
    model.init_from_data(images)
    out = model.stem(images)[:, :12]  # the positive half of the filters
    flat = out.permute(0, 2, 3, 1).reshape(-1, 12)
    corr = torch.corrcoef(flat.T)
    off_diag = corr - torch.diag(torch.diag(corr))
    assert off_diag.abs().max() < 0.1
    assert not model.stem.weight.requires_grad


def test_summary_rows_add_up_to_total():
    model = create_model("basic_cnn", num_classes=10, in_chans=1, input_size=28)
    rows = layer_table(model, (1, 1, 28, 28))
    assert sum(r.flops for r in rows) == count_flops(model, (1, 1, 28, 28))
    assert sum(r.params for r in rows) == sum(p.numel() for p in model.parameters())
    assert rows[0].out_shape == (1, 32, 28, 28)

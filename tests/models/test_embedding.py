"""The metric-learning network: shapes, each loss, and the invariances its options promise."""

from __future__ import annotations

import pytest
import torch

from cnnkit.errors import CnnkitError
from cnnkit.models import create_model
from cnnkit.models.embedding import LOSSES, fingerprint


def net(**kw):
    torch.manual_seed(0)
    return create_model("embedder", num_classes=3, in_chans=1, backbone="fastnet_tiny", dim=8, **kw)


@pytest.mark.parametrize("loss", sorted(LOSSES))
def test_each_loss_trains_and_embeddings_are_unit_vectors(loss):
    model = net(loss=loss).train()
    x, labels = torch.randn(8, 1, 32, 32), torch.tensor([0, 0, 1, 1, 2, 2, 0, 1])
    value = model(x, labels)
    assert value.ndim == 0 and torch.isfinite(value)
    value.backward()
    out = model.eval()(x)
    assert out.shape == (8, 8) and torch.allclose(out.norm(dim=1), torch.ones(8), atol=1e-5)


def test_prewhitening_ignores_the_brightness_and_contrast_of_a_whole_image():
    model = net(prewhiten=True).eval()
    x = torch.randn(4, 1, 32, 32)
    with torch.no_grad():
        assert torch.allclose(model(x), model(0.3 * x + 2.0), atol=1e-4)
        assert not torch.allclose(net(prewhiten=False).eval()(x), net(prewhiten=False).eval()(0.3 * x + 2.0),
                                  atol=1e-2)


def test_flip_averaging_makes_an_image_and_its_mirror_one_embedding():
    model = net(flip_average=True).eval()
    x = torch.randn(4, 1, 32, 32)
    with torch.no_grad():
        assert torch.allclose(model(x), model(x.flip(-1)), atol=1e-5)


def test_bad_losses_are_refused_in_one_line():
    with pytest.raises(CnnkitError, match="Did you mean 'arcface'"):
        net(loss="arcfase")
    with pytest.raises(CnnkitError, match="two or more"):
        create_model("embedder", num_classes=1, in_chans=1, backbone="fastnet_tiny", dim=8)


def test_the_fingerprint_follows_the_embedding_weights_not_the_class_centres():
    model = net()
    before = fingerprint(model)
    with torch.no_grad():
        model.criterion.W.add_(1.0)
    assert fingerprint(model) == before
    with torch.no_grad():
        next(model.neck.parameters()).add_(0.01)
    assert fingerprint(model) != before

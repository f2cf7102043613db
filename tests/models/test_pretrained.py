import time

import pytest
import torch
import torchvision

from cnnkit.errors import CnnkitError
from cnnkit.models import create_model
from cnnkit.models.torchvision_models import adapt_in_chans


def test_local_weights_file_is_loaded_and_adapted(tmp_path):
    torch.manual_seed(0)
    reference = torchvision.models.resnet18(weights=None)  # 1000 classes, RGB, as torchvision saves it
    path = tmp_path / "resnet18.pth"
    torch.save(reference.state_dict(), path)
    model = create_model("resnet18", num_classes=4, in_chans=1, pretrained=str(path))
    assert torch.equal(model.layer1[0].conv1.weight, reference.layer1[0].conv1.weight)
    assert torch.allclose(model.conv1.weight, reference.conv1.weight.sum(1, keepdim=True))
    assert model.fc.out_features == 4


def test_adapt_in_chans_keeps_grey_response():
    w = torch.randn(8, 3, 3, 3)
    grey = torch.rand(1, 1, 9, 9)
    assert adapt_in_chans(w, 2).shape == (8, 2, 3, 3)
    for c in (1, 6):  # exact for 1 channel and multiples of 3; tiling only approximates it otherwise
        a = adapt_in_chans(w, c)
        assert a.shape == (8, c, 3, 3)
        out = torch.nn.functional.conv2d(grey.expand(1, c, 9, 9), a)
        ref = torch.nn.functional.conv2d(grey.expand(1, 3, 9, 9), w)
        assert torch.allclose(out, ref, atol=1e-5)


def test_missing_or_foreign_weights_file(tmp_path):
    with pytest.raises(CnnkitError, match="not found"):
        create_model("resnet18", pretrained=str(tmp_path / "nope.pth"))
    other = tmp_path / "other.pth"
    torch.save(torchvision.models.mobilenet_v3_small(weights=None).state_dict(), other)
    with pytest.raises(CnnkitError, match="do not match resnet18"):
        create_model("resnet18", pretrained=str(other))


def test_torchvision_weights_offline_fail_fast(monkeypatch):
    def no_network(self, *a, **kw):
        raise OSError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(torchvision.models.WeightsEnum, "get_state_dict", no_network)
    start = time.perf_counter()
    with pytest.raises(CnnkitError, match="could not download torchvision weights.*--pretrained"):
        create_model("resnet18", pretrained="torchvision")
    assert time.perf_counter() - start < 5


@pytest.mark.parametrize("arch,name", [("resnet34", "unet_resnet34"),
                                       ("mobilenet_v3_large", "fcn8s_mobilenet_v3_large")])
def test_segmentation_encoder_takes_local_pretrained_weights(tmp_path, arch, name):
    torch.manual_seed(0)
    reference = torchvision.models.get_model(arch, weights=None)
    path = tmp_path / f"{arch}.pth"
    torch.save(reference.state_dict(), path)
    model = create_model(name, num_classes=3, in_chans=3, pretrained=str(path))
    convs = [p for p in model.encoder.parameters() if p.ndim == 4]  # BN's ones and zeros would match anyway
    ref = [p for p in reference.parameters() if p.ndim == 4]
    matched = sum(any(p.shape == r.shape and torch.equal(p, r) for r in ref) for p in convs)
    assert matched == len(convs)
    with pytest.raises(CnnkitError, match="no pretrained weights"):
        create_model("unet_basic", pretrained=str(path))

"""timm's networks by name, with weights from files in timm's own layouts (random values made here: nothing
is downloaded): as classifiers, segmentation encoders and detector encoders."""

import numpy as np
import pytest
import torch

from cnnkit.errors import CnnkitError
from cnnkit.models import create_model, list_models

timm = pytest.importorskip("timm")


@pytest.fixture(scope="module")
def resnet18_weights(tmp_path_factory):
    """timm's resnet18 (ImageNet head, 1000 classes) saved as torch and as safetensors, as the hub holds it."""
    from safetensors.torch import save_file

    torch.manual_seed(0)
    state = timm.create_model("resnet18", pretrained=False).state_dict()
    folder = tmp_path_factory.mktemp("timm")
    torch.save(state, folder / "pytorch_model.bin")
    save_file({k: v.contiguous() for k, v in state.items()}, str(folder / "model.safetensors"))
    return state, folder


@pytest.mark.parametrize("file", ["pytorch_model.bin", "model.safetensors"])
def test_timm_classifier_takes_timm_weights(resnet18_weights, file):
    state, folder = resnet18_weights
    model = create_model("timm/resnet18", num_classes=3, in_chans=1, pretrained=str(folder / file))
    mine = model.state_dict()
    assert torch.equal(mine["layer3.1.conv2.weight"], state["layer3.1.conv2.weight"])
    assert torch.allclose(mine["conv1.weight"], state["conv1.weight"].sum(1, keepdim=True))  # grey: RGB summed
    assert mine["fc.weight"].shape == (3, 512)  # a new head for 3 classes
    assert model(torch.rand(2, 1, 32, 32)).shape == (2, 3)
    assert "timm/resnet18" not in list_models()  # resolved on demand, not listed with the registered ones


def test_timm_encoders_for_segmentation_and_detection(resnet18_weights):
    state, folder = resnet18_weights
    unet = create_model("unet_timm/resnet18", num_classes=4, pretrained=str(folder / "model.safetensors"))
    assert torch.equal(unet.encoder.net.state_dict()["layer4.0.conv1.weight"], state["layer4.0.conv1.weight"])
    assert unet(torch.rand(1, 3, 64, 64)).shape == (1, 4, 64, 64)
    assert create_model("deeplabv3plus_timm/convnext_atto", num_classes=2)(torch.rand(1, 3, 64, 64)).shape == (
        1, 2, 64, 64)
    rcnn = create_model("maskrcnn_timm/resnet18", num_classes=1, pretrained=str(folder / "pytorch_model.bin"))
    frozen = [m for m in rcnn.backbone.encoder.modules() if type(m).__name__ == "FrozenBatchNorm2d"]
    assert frozen  # BatchNorm fixed at the pretrained statistics, as detectors fine-tune
    rcnn.eval()
    assert rcnn([torch.rand(3, 64, 64)])[0]["boxes"].shape[1] == 4


def test_timm_names_and_files_refused_in_one_line(tmp_path, resnet18_weights):
    with pytest.raises(CnnkitError, match="not a timm model. Did you mean 'resnet18'"):
        create_model("timm/resnt18")
    with pytest.raises(CnnkitError, match="U-Net needs features at strides"):
        create_model("unet_timm/convnext_atto")
    with pytest.raises(CnnkitError, match="a timm encoder goes under unet"):
        create_model("segnet_timm/resnet18")
    with pytest.raises(CnnkitError, match="not weights of timm's convnext_atto"):
        create_model("timm/convnext_atto", pretrained=str(resnet18_weights[1] / "pytorch_model.bin"))
    with pytest.raises(CnnkitError, match="file not found"):
        create_model("timm/resnet18", pretrained=str(tmp_path / "none.pth"))


def test_a_timm_model_trains_loads_and_exports(tmp_path, shapes_folder):
    import cnnkit

    run = cnnkit.train(data=str(shapes_folder), model="timm/resnet18", imgsz=32, epochs=1, batch=16, verbose=False,
                       project=str(tmp_path))
    onnx, _ = cnnkit.export(run.run_dir / "best.pt")
    path = sorted((shapes_folder / "val").rglob("*.png"))[0]
    eager, exported = cnnkit.load(run.run_dir / "best.pt").predict(str(path)), cnnkit.load(onnx).predict(str(path))
    assert eager[0]["class"] == exported[0]["class"]
    assert abs(eager[0]["score"] - exported[0]["score"]) < 1e-3


def test_timm_networks_pretrain_and_hand_over_their_encoder(tmp_path, shapes_folder, caplog):
    """A timm network is a trunk family: pretrained without labels, its encoder starts a timm classifier and a
    U-Net on the same timm encoder (timm keeps ResNet's layer names in features_only)."""
    import cnnkit
    from cnnkit.models.trunk import trunk_of

    classifier = create_model("timm/resnet18", num_classes=3)
    trunk = trunk_of(classifier)
    assert trunk.family == "timm/resnet18" and "fc.weight" not in trunk.module.state_dict()
    assert trunk.module(torch.rand(1, 3, 64, 64)).shape == (1, 512, 2, 2)
    unet_trunk = trunk_of(create_model("unet_timm/resnet18", num_classes=2))
    assert unet_trunk.family == "timm/resnet18"
    assert set(unet_trunk.module.state_dict()) == set(trunk.module.state_dict())

    pre = cnnkit.train(task="pretrain", data=str(shapes_folder), model="timm/resnet18", imgsz=32, epochs=1, batch=16,
                       verbose=False, project=str(tmp_path))
    caplog.set_level("INFO", logger="cnnkit")
    tuned = cnnkit.train(data=str(shapes_folder), model="timm/resnet18", imgsz=32, epochs=2, batch=16,
                         pretrained=str(pre.run_dir / "best.pt"), freeze_epochs=1, verbose=False,
                         project=str(tmp_path))
    assert "loaded the timm/resnet18 encoder" in caplog.text and (tuned.run_dir / "best.pt").is_file()
    assert cnnkit.load(tuned.run_dir / "best.pt").embed([np.zeros((32, 32, 3), np.uint8)]).shape == (1, 512)

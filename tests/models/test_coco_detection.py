"""torchvision's COCO detectors: their weights load key for key from a file in torchvision's layout (random
values made here: nothing is downloaded), the class layers are new, and other files are refused."""

import pytest
import torch
import torchvision

from cnnkit.errors import CnnkitError
from cnnkit.models import create_model
from cnnkit.models.trunk import trunk_of


@pytest.mark.parametrize("name, maker", [
    ("maskrcnn_resnet50_fpn_coco", torchvision.models.detection.maskrcnn_resnet50_fpn),
    ("fasterrcnn_resnet50_fpn_coco", torchvision.models.detection.fasterrcnn_resnet50_fpn)])
def test_torchvision_coco_weights_load_key_for_key(tmp_path, name, maker):
    torch.manual_seed(0)
    reference = maker(weights=None, weights_backbone=None, num_classes=91)  # torchvision's own model and keys
    state = reference.state_dict()
    torch.save(state, tmp_path / "coco.pth")
    model = create_model(name, num_classes=2, pretrained=str(tmp_path / "coco.pth"))
    mine = model.state_dict()
    for key in ("backbone.body.layer3.2.conv2.weight", "backbone.fpn.layer_blocks.0.0.weight",
                "rpn.head.cls_logits.weight", "roi_heads.box_head.fc7.weight"):
        assert torch.equal(mine[key], state[key]), key
    if name.startswith("maskrcnn"):
        assert torch.equal(mine["roi_heads.mask_head.3.0.weight"], state["roi_heads.mask_head.3.0.weight"])
        assert mine["roi_heads.mask_predictor.mask_fcn_logits.weight"].shape[0] == 3  # 2 classes + background
    assert mine["roi_heads.box_predictor.cls_score.weight"].shape[0] == 3
    assert isinstance(model.backbone.body.bn1, torchvision.ops.FrozenBatchNorm2d)  # as torchvision fine-tunes
    assert trunk_of(model).family == "resnet"  # embeddings and --freeze-epochs find its encoder


def test_other_weights_are_refused_in_one_line(tmp_path):
    torch.save(torchvision.models.resnet50().state_dict(), tmp_path / "imagenet.pth")
    with pytest.raises(CnnkitError, match="not torchvision's maskrcnn_resnet50_fpn COCO weights .* an ImageNet "
                                          "backbone file goes into cnnkit's own maskrcnn_resnet50 instead"):
        create_model("maskrcnn_resnet50_fpn_coco", num_classes=1, pretrained=str(tmp_path / "imagenet.pth"))


def test_grey_images_take_the_rgb_filters_summed(tmp_path):
    torch.manual_seed(0)
    torch.save(torchvision.models.detection.fasterrcnn_resnet50_fpn(weights=None, weights_backbone=None).state_dict(),
               tmp_path / "coco.pth")
    weights = str(tmp_path / "coco.pth")
    rgb = create_model("fasterrcnn_resnet50_fpn_coco", num_classes=1, pretrained=weights)
    grey = create_model("fasterrcnn_resnet50_fpn_coco", num_classes=1, in_chans=1, pretrained=weights)
    assert torch.allclose(grey.backbone.body.conv1.weight, rgb.backbone.body.conv1.weight.sum(1, keepdim=True))

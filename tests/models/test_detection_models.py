"""Every registered instance and detect model: losses in training, detections in evaluation."""

import copy

import pytest
import torch

from cnnkit.models import create_model, list_models
from cnnkit.models.registry import BOX_DETECTOR, MASK_DETECTOR

MODELS = list_models(MASK_DETECTOR) + list_models(BOX_DETECTOR)


def targets(masks: bool) -> list[dict]:
    out = []
    for h, w in ((72, 88), (64, 64)):
        t = {"boxes": torch.tensor([[8.0, 10.0, 40.0, 50.0]]), "labels": torch.tensor([2])}
        if masks:
            m = torch.zeros(1, h, w, dtype=torch.uint8)
            m[0, 10:50, 8:40] = 1
            t["masks"] = m
        out.append(t)
    out[1] = {k: v[:0] for k, v in out[1].items()}  # an image without objects
    return out


@pytest.mark.parametrize("name", MODELS)
def test_forward_backward_and_eval(name: str):
    torch.manual_seed(0)
    small = {} if name.endswith("_coco") else {"fpn_channels": 32, "mask_channels": 16}  # torchvision's widths fixed
    model = create_model(name, num_classes=3, in_chans=1, detections=10, **small)
    images = [torch.rand(1, 72, 88), torch.rand(1, 64, 64)]
    masks = name.startswith("maskrcnn")
    model.train()
    losses = model(images, targets(masks))
    assert ("loss_mask" in losses) == masks and all(torch.isfinite(v) for v in losses.values())
    sum(losses.values()).backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())
    model.eval()
    with torch.no_grad():
        out = model(images)
    assert len(out) == 2 and out[0]["boxes"].shape[1] == 4 and len(out[0]["boxes"]) <= 10
    if masks:
        assert out[0]["masks"].shape[1:] == (1, 28, 28)  # box-relative; pasted by cnnkit one at a time


def test_group_norm_from_scratch_and_frozen_with_weights(tmp_path):
    from torchvision.ops import FrozenBatchNorm2d

    scratch = create_model("maskrcnn_resnet18", num_classes=1)
    assert any(isinstance(m, torch.nn.GroupNorm) for m in scratch.backbone.encoder.modules())
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in scratch.modules())
    weights = tmp_path / "r18.pth"
    torch.save(create_model("resnet18").state_dict(), weights)
    tuned = create_model("maskrcnn_resnet18", num_classes=1, pretrained=str(weights))
    assert any(isinstance(m, FrozenBatchNorm2d) for m in tuned.backbone.encoder.modules())


def test_anchors_are_configurable():
    model = create_model("maskrcnn_mobilenet_v3_small", num_classes=1, anchor_sizes=[4, 8, 16, 32, 64],
                         aspect_ratios=[1.0])
    assert model.rpn.anchor_generator.sizes[0] == (4,) and model.rpn.head.cls_logits.out_channels == 1


def test_images_of_different_sizes_predict_as_they_would_alone():
    """Regression: batched evaluation padded small images to the largest, and GroupNorm's statistics
    then counted the padding, lowering DSB2018 mask AP50 from 0.83 to 0.68."""
    from cnnkit.models.wrapper import ImageModel

    torch.manual_seed(0)
    net = create_model("maskrcnn_resnet18", num_classes=1, fpn_channels=16, mask_channels=16, detections=5,
                       score_thresh=0.0)
    model = ImageModel(net, {"task": "instance", "model": "maskrcnn_resnet18", "classes": ["a"], "in_chans": 3,
                             "mean": [0.5] * 3, "std": [0.25] * 3}).eval()
    small, large = torch.randint(0, 255, (3, 64, 64), dtype=torch.uint8), torch.randint(0, 255, (3, 160, 192),
                                                                                       dtype=torch.uint8)
    with torch.no_grad():
        together = model([small, large])
        alone = model([small])[0]
    torch.testing.assert_close(together[0]["boxes"], alone["boxes"])
    torch.testing.assert_close(together[0]["scores"], alone["scores"])


def test_a_small_first_image_does_not_change_later_predictions():
    """Regression: torchvision's RoIAlign inferred its level scales from the first batch and kept them;
    an image under ~64 px set them twice too large for every image after it."""
    torch.manual_seed(0)
    model = create_model("maskrcnn_resnet18", num_classes=2, fpn_channels=32, mask_channels=16, detections=20).eval()
    fresh = copy.deepcopy(model)
    big, small = torch.rand(3, 96, 96), torch.rand(3, 40, 50)
    with torch.no_grad():
        model([small])
        after_small = model([big])[0]["scores"]
        alone = fresh([big])[0]["scores"]
    assert torch.equal(alone, after_small)
    assert model.roi_heads.box_roi_pool.scales == [0.25, 0.125, 0.0625, 0.03125]

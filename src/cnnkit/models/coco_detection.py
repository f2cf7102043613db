"""torchvision's COCO-trained Mask R-CNN and Faster R-CNN (ResNet-50 + FPN), to fine-tune from their weights.

cnnkit's own detectors (``maskrcnn_resnet18``, ...) use GroupNorm and cnnkit's encoders, so COCO
weights cannot go into them. These two are torchvision's own layout, key for key: a ResNet-50 body with
BatchNorm frozen at its trained statistics (``FrozenBatchNorm2d``), a 256-channel feature pyramid
without normalisation, anchors 32..512 px, the two-layer box head and the four-convolution mask head.
``pretrained`` is a local file of torchvision's weights (``maskrcnn_resnet50_fpn_coco.pth`` /
``fasterrcnn_resnet50_fpn_coco.pth``, as torchvision's ``MaskRCNN_ResNet50_FPN_Weights.COCO_V1``
downloads them), or 'torchvision' to download them. The class layers are replaced for ``num_classes``
(the COCO ones are dropped); everything else starts from COCO, as in torchvision's fine-tuning tutorial.

Source: He et al., "Mask R-CNN" (2017); torchvision.models.detection.
"""

from __future__ import annotations

from collections.abc import Sequence

import torchvision
from torch import nn
from torchvision.models.detection import FasterRCNN, MaskRCNN
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.backbone_utils import resnet_fpn_backbone
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor
from torchvision.models.detection.mask_rcnn import MaskRCNNPredictor
from torchvision.ops import FrozenBatchNorm2d

from cnnkit.errors import CnnkitError
from cnnkit.models.detection import FixedScaleTransform
from cnnkit.models.registry import BOX_DETECTOR, MASK_DETECTOR, register_model
from cnnkit.models.torchvision_models import adapt_in_chans, load_weights

COCO_CLASSES = 91  # torchvision's COCO heads: 80 categories in 91 slots, background included
COCO_ANCHORS = (32, 64, 128, 256, 512)  # torchvision's, one side per pyramid level; the RPN learnt these


def coco_url(arch: str) -> str:
    """Where torchvision keeps ``arch``'s COCO weights (its weights enum knows; nothing is fetched)."""
    return torchvision.models.get_model_weights(arch).DEFAULT.url


def build_coco_rcnn(masks: bool, num_classes: int, in_chans: int = 3, pretrained: str = "",
                    anchor_sizes: Sequence[int] = COCO_ANCHORS, trainable_layers: int = 3, detections: int = 300,
                    score_thresh: float = 0.05, nms_thresh: float = 0.5, box_batch: int = 512) -> nn.Module:
    """torchvision's ``maskrcnn_resnet50_fpn`` (``masks``) or ``fasterrcnn_resnet50_fpn`` with frozen BatchNorm,
    its COCO weights from ``pretrained`` (a file or 'torchvision'), then new class layers for ``num_classes``
    (background excluded). ``trainable_layers``: ResNet stages trained (0-5; torchvision fine-tunes 3).

    Raises CnnkitError for a weights file of another layout (a cnnkit checkpoint, an ImageNet classifier).
    """
    if not 0 <= trainable_layers <= 5:
        raise CnnkitError(f"model_args trainable_layers {trainable_layers}: give 0 to 5 ResNet stages")
    backbone = resnet_fpn_backbone(backbone_name="resnet50", weights=None, norm_layer=FrozenBatchNorm2d,
                                   trainable_layers=trainable_layers)
    anchors = AnchorGenerator(tuple((int(s),) for s in anchor_sizes), ((0.5, 1.0, 2.0),) * len(anchor_sizes))
    kw = dict(rpn_anchor_generator=anchors, box_detections_per_img=detections, box_score_thresh=score_thresh,
              box_nms_thresh=nms_thresh, box_batch_size_per_image=box_batch)
    model = (MaskRCNN if masks else FasterRCNN)(backbone, num_classes=COCO_CLASSES, **kw)
    if pretrained:
        arch = "maskrcnn_resnet50_fpn" if masks else "fasterrcnn_resnet50_fpn"
        state = load_weights(pretrained, arch)
        missing, unexpected = model.load_state_dict(state, strict=False)
        if missing or unexpected:
            backbone_only = not any(k.startswith(("backbone.", "rpn.", "roi_heads.")) for k in state)
            hint = (f"an ImageNet backbone file goes into cnnkit's own {arch.split('_')[0]}_resnet50 instead; "
                    if backbone_only else "")
            raise CnnkitError(f"{pretrained}: not torchvision's {arch} COCO weights ({len(missing)} of the model's "
                              f"tensors missing, first {(missing or ['-'])[0]}; {len(unexpected)} in the file it does "
                              f"not have); {hint}give {coco_url(arch)}, downloaded once")
    conv1 = model.backbone.body.conv1
    if in_chans != 3:  # grey or multi-channel images: the RGB filters mapped as timm does
        new = nn.Conv2d(in_chans, 64, 7, 2, 3, bias=False)
        new.weight.data.copy_(adapt_in_chans(conv1.weight.data, in_chans))
        model.backbone.body.conv1 = new
    model.roi_heads.box_predictor = FastRCNNPredictor(1024, num_classes + 1)
    if masks:
        model.roi_heads.mask_predictor = MaskRCNNPredictor(256, 256, num_classes + 1)
    # inputs arrive normalised and at cnnkit's chosen scale: the transform only pads and batches
    model.transform = FixedScaleTransform(1, 1, [0.0] * in_chans, [1.0] * in_chans)
    return model


@register_model("maskrcnn_resnet50_fpn_coco", kind=MASK_DETECTOR)
def maskrcnn_resnet50_fpn_coco(num_classes: int = 1, in_chans: int = 3, pretrained: str = "", **kw) -> nn.Module:
    """Mask R-CNN in torchvision's layout (ResNet-50 + FPN, frozen BN): takes torchvision's COCO weights."""
    return build_coco_rcnn(True, num_classes, in_chans, pretrained, **kw)


@register_model("fasterrcnn_resnet50_fpn_coco", kind=BOX_DETECTOR)
def fasterrcnn_resnet50_fpn_coco(num_classes: int = 1, in_chans: int = 3, pretrained: str = "", **kw) -> nn.Module:
    """Faster R-CNN in torchvision's layout (ResNet-50 + FPN, frozen BN): takes torchvision's COCO weights."""
    return build_coco_rcnn(False, num_classes, in_chans, pretrained, **kw)

"""Mask R-CNN and Faster R-CNN from torchvision's detection parts around cnnkit's encoders.

encoder (ResNet / MobileNetV3) -> feature pyramid (strides 4..64) -> region proposal network
-> RoIAlign -> box and class head (-> mask head, upsampled by a transposed convolution).

Normalisation: from random initialisation every layer uses GroupNorm. Detection trains on
few large images per step (1-8 here), where BatchNorm's batch statistics are noisy and differ
between training and evaluation; GroupNorm normalises each image on its own, so it behaves the
same at any batch size (Wu & He, 2018). With a pretrained encoder the default is torchvision's
choice for fine-tuning: BatchNorm frozen at the pretrained statistics.

Images are not resized inside the model: cnnkit's data pipeline and predictor choose the scale,
so the anchors meet objects at the size they were trained at. Inputs are lists of
``(C, H, W)`` float tensors already normalised (``ImageModel`` does it).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

import torch
from torch import nn
from torchvision.models.detection import FasterRCNN, MaskRCNN
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.faster_rcnn import FastRCNNConvFCHead, FastRCNNPredictor
from torchvision.models.detection.mask_rcnn import MaskRCNNHeads, MaskRCNNPredictor
from torchvision.models.detection.rpn import RPNHead
from torchvision.models.detection.transform import GeneralizedRCNNTransform
from torchvision.ops import FeaturePyramidNetwork, MultiScaleRoIAlign
from torchvision.ops.feature_pyramid_network import LastLevelMaxPool
from torchvision.ops.poolers import initLevelMapper

from cnnkit.models.encoders import build_encoder, norm_layer
from cnnkit.models.features import Trunk
from cnnkit.models.registry import BOX_DETECTOR, MASK_DETECTOR, register_model

# anchor side per pyramid level P2..P6 (pixels); COCO's default starts at 32, too large for nuclei
DEFAULT_ANCHORS = (16, 32, 64, 128, 256)


class EncoderFPN(nn.Module):
    """A cnnkit encoder topped by a feature pyramid: ``forward(x)`` -> OrderedDict of
    ``(N, out_channels, H / s, W / s)`` maps for s = 4, 8, 16, 32 ('0'..'3') and 64 ('pool')."""

    def __init__(self, encoder: nn.Module, out_channels: int = 128, norm: str = "group"):
        super().__init__()
        self.encoder = encoder
        self.levels = [i for i, s in enumerate(encoder.strides) if s >= 4]
        layer = norm_layer(norm) if norm == "group" else None  # FPN's own layers are new: group or none
        self.fpn = FeaturePyramidNetwork([encoder.out_channels[i] for i in self.levels], out_channels,
                                         extra_blocks=LastLevelMaxPool(), norm_layer=layer)
        self.out_channels = out_channels

    def cnnkit_trunk(self) -> Trunk:
        """The encoder under the feature pyramid."""
        return self.encoder.cnnkit_trunk()

    def forward(self, x: torch.Tensor) -> OrderedDict[str, torch.Tensor]:
        features = self.encoder(x)
        return self.fpn(OrderedDict((str(k), features[i]) for k, i in enumerate(self.levels)))


class FixedScaleTransform(GeneralizedRCNNTransform):
    """torchvision's batching (pad to a multiple of 32) without its resize: cnnkit picks the scale.

    Detections keep their masks as ``(N, 1, 28, 28)`` probabilities in box coordinates: pasting
    hundreds of full-image masks at once would take gigabytes on a large image;
    ``cnnkit.metrics.coco.paste_local`` pastes them one at a time.
    """

    def resize(self, image: torch.Tensor, target: dict | None = None) -> tuple[torch.Tensor, dict | None]:
        return image, target

    def postprocess(self, result: list[dict], image_shapes: list, original_image_sizes: list) -> list[dict]:
        return result


def fixed_scale_pool(levels: list[str], output_size: int) -> MultiScaleRoIAlign:
    """RoIAlign over the pyramid levels of strides 4, 8, 16, 32, with those scales set now.

    torchvision infers the scales from the first batch it sees and keeps them; an image under about
    64 px rounds them to twice the truth (1/2 for stride 4), and every later image was then pooled
    from the wrong places. Known strides need no inference.
    """
    pool = MultiScaleRoIAlign(levels, output_size=output_size, sampling_ratio=2)
    pool.scales = [1.0 / 2 ** (2 + k) for k in range(len(levels))]
    pool.map_levels = initLevelMapper(2, 1 + len(levels), pool.canonical_scale, pool.canonical_level)
    return pool


def build_rcnn(encoder: str, num_classes: int, in_chans: int = 3, masks: bool = True, pretrained: str = "",
               norm: str = "", fpn_channels: int = 128, anchor_sizes: Sequence[int] = DEFAULT_ANCHORS,
               aspect_ratios: Sequence[float] = (0.5, 1.0, 2.0), rpn_pre_nms: int = 1000, rpn_post_nms: int = 500,
               rpn_post_nms_test: int = 1000,
               box_batch: int = 128, box_convs: int = 0, box_width: int = 256, mask_convs: int = 2,
               mask_channels: int = 64, detections: int = 300, score_thresh: float = 0.05,
               nms_thresh: float = 0.5) -> nn.Module:
    """Mask R-CNN (``masks``) or Faster R-CNN on ``encoder`` with FPN; ``num_classes`` excludes background.

    ``anchor_sizes``: one anchor side per pyramid level, strides 4..64 (pixels); ``aspect_ratios``
    (height / width) apply at every level. ``rpn_pre_nms``/``rpn_post_nms``: proposals kept before
    and after the RPN's NMS, per image (``rpn_post_nms_test`` at evaluation); ``box_batch``: RoIs sampled
    per image for the box head (a quarter of them positive, which also bound the mask head's work);
    ``mask_convs`` x ``mask_channels``: the mask head's 3x3 convolutions;
    ``detections``: the most objects returned per image (nuclei images hold up to ~400).
    """
    norm = norm or ("frozen" if pretrained else "group")
    body = build_encoder(encoder, in_chans, pretrained=pretrained, norm=norm)
    backbone = EncoderFPN(body, fpn_channels, "group" if norm != "batch" else "batch")
    head_norm = norm_layer("group") if norm != "batch" else nn.BatchNorm2d
    levels = ["0", "1", "2", "3"]
    anchors = AnchorGenerator(tuple((int(s),) for s in anchor_sizes), (tuple(aspect_ratios),) * len(anchor_sizes))
    kw = dict(
        rpn_anchor_generator=anchors,
        rpn_head=RPNHead(fpn_channels, len(aspect_ratios), conv_depth=1),
        rpn_pre_nms_top_n_train=rpn_pre_nms, rpn_pre_nms_top_n_test=rpn_pre_nms,
        rpn_post_nms_top_n_train=rpn_post_nms, rpn_post_nms_top_n_test=rpn_post_nms_test,
        box_roi_pool=fixed_scale_pool(levels, 7),
        # box_convs=0: two fully connected layers (torchvision's original head), cheap for hundreds of RoIs
        # on a CPU; box_convs=4 gives the GroupNorm conv head of torchvision's "v2" models
        box_head=FastRCNNConvFCHead((fpn_channels, 7, 7), [fpn_channels] * box_convs,
                                    [box_width] * (1 if box_convs else 2), norm_layer=head_norm),
        box_predictor=FastRCNNPredictor(box_width, num_classes + 1),  # + background
        box_batch_size_per_image=box_batch, box_detections_per_img=detections,
        box_score_thresh=score_thresh, box_nms_thresh=nms_thresh,
    )
    if masks:
        kw["mask_roi_pool"] = fixed_scale_pool(levels, 14)
        kw["mask_head"] = MaskRCNNHeads(fpn_channels, [mask_channels] * mask_convs, 1, norm_layer=head_norm)
        # 2x2 transposed convolution 14 -> 28 px, then one 1x1 mask logit map per class
        kw["mask_predictor"] = MaskRCNNPredictor(mask_channels, mask_channels, num_classes + 1)
        model = MaskRCNN(backbone, **kw)
    else:
        model = FasterRCNN(backbone, **kw)
    # inputs arrive normalised and at the chosen scale; the transform only pads and batches
    model.transform = FixedScaleTransform(1, 1, [0.0] * in_chans, [1.0] * in_chans)
    return model


def _register(arch: str, encoder: str, masks: bool, doc: str) -> None:
    def builder(num_classes: int = 1, in_chans: int = 3, pretrained: str = "", **kw) -> nn.Module:
        return build_rcnn(encoder, num_classes, in_chans, masks, pretrained, **kw)

    builder.__doc__ = doc
    register_model(f"{arch}_{encoder}", kind=MASK_DETECTOR if masks else BOX_DETECTOR)(builder)


for _enc in ("resnet18", "resnet34", "resnet50", "mobilenet_v3_large", "mobilenet_v3_small"):
    _register("maskrcnn", _enc, True, f"Mask R-CNN: {_enc} + FPN, RPN, RoIAlign, box and mask heads.")
    _register("fasterrcnn", _enc, False, f"Faster R-CNN: {_enc} + FPN, RPN, RoIAlign, box head (boxes only).")

"""Small models for the explanation tests: untrained, built in milliseconds, no checkpoint on disk."""

from __future__ import annotations

import torch
from torch import nn

from cnnkit.meta import ModelMeta
from cnnkit.models.wrapper import ImageModel, build_image_model

GREY = {"mean": [0.5] * 3, "std": [0.25] * 3}


def classifier(model: str = "basic_cnn", **model_args) -> ImageModel:
    torch.manual_seed(0)
    meta = ModelMeta.card(task="classify", model=model, classes=["circle", "square", "star"], in_chans=3, imgsz=32,
                          model_args=model_args or {"preset": "tiny", "input_size": 32}, **GREY)
    return build_image_model(meta).eval()


def segmenter(binary: bool = False) -> ImageModel:
    torch.manual_seed(0)
    classes = ["background", "foreground"] if binary else ["background", "circle", "square"]
    meta = ModelMeta.card(task="segment", model="unet_basic", classes=classes, in_chans=3, imgsz=32, crop=[32, 32],
                          num_outputs=1 if binary else 0, max_size=0,
                          model_args={"widths": [8, 8, 16, 16, 16], "decoder_channels": [16, 16, 8, 8, 8]},
                          extra={"values": list(range(len(classes))), "ignore_index": 255, "binary": binary}, **GREY)
    return build_image_model(meta).eval()


class Brightness(nn.Module):
    """Class 1's logit is the mean brightness (a fixed 1x1 convolution summing the channels, then a ReLU), class
    0's minus it: what Grad-CAM should find is wherever the image is bright."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 1, 1), nn.ReLU())
        with torch.no_grad():
            self.features[0].weight.fill_(1.0)
            self.features[0].bias.fill_(-0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = self.features(x).mean((1, 2, 3))
        return torch.stack([-mean, mean], 1)


def brightness_model() -> ImageModel:
    meta = ModelMeta.card(task="classify", model="brightness", classes=["dark", "bright"], in_chans=3, imgsz=32,
                          mean=[0.0] * 3, std=[1.0] * 3)
    return ImageModel(Brightness(), meta).eval()

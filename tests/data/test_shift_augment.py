"""``shift_augment``: inversion and colour changes for instance training, on grey and colour images."""

from __future__ import annotations

import pytest
import torch
from torchvision import tv_tensors

from cnnkit.data.instance import InstanceTransform


@pytest.mark.parametrize("channels", [1, 3])
def test_shift_augment_changes_pixels_not_masks(channels):
    torch.manual_seed(0)
    transform = InstanceTransform("none", (32, 32), shift=True)
    # a dark image (0..63): inverted, its mean is far above anything jitter alone makes of it
    image = torch.arange(32 * 32, dtype=torch.float32).view(1, 32, 32).div(16).to(torch.uint8).repeat(channels, 1, 1)
    masks = tv_tensors.Mask(torch.zeros(1, 32, 32, dtype=torch.uint8))
    masks[0, 4:10, 4:10] = 1
    outs = [transform.ops({"image": tv_tensors.Image(image.clone()), "masks": masks.clone()}) for _ in range(20)]
    assert all(o["image"].shape == (channels, 32, 32) and o["image"].dtype == torch.uint8 for o in outs)
    assert all(torch.equal(o["masks"], masks) for o in outs)
    inverted = [o for o in outs if o["image"].float().mean() > 128]
    assert 0 < len(inverted) < 20  # inverted about half of the time

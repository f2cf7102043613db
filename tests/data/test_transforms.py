"""Masks stay on their images when augmentation resizes both (nearest-exact against antialiased bilinear)."""

import numpy as np
import pytest
import torch
from torchvision.transforms import InterpolationMode
from torchvision.transforms.v2 import functional as F

from cnnkit.data.transforms import SegmentTransform, resize_mask

SIDE = 40
# output sides whose ratio to SIDE has no ties between two source pixels: zoom 1.025 .. 1.975
SIDES = [41, 43, 47, 53, 59, 61, 67, 71, 73, 79]


def centroid(weights: torch.Tensor) -> np.ndarray:
    """(row, column) centroid of a 2-D weight map, in pixels."""
    w = weights.double()
    rows, cols = torch.meshgrid(torch.arange(w.shape[0]), torch.arange(w.shape[1]), indexing="ij")
    return np.array([float((w * rows).sum() / w.sum()), float((w * cols).sum() / w.sum())])


def block_pairs():
    """A red block on black and its mask, at positions of every sub-pixel phase once zoomed."""
    for top in range(6, 18):
        image = torch.zeros(3, SIDE, SIDE, dtype=torch.uint8)
        mask = torch.zeros(SIDE, SIDE, dtype=torch.int64)
        image[0, top:top + 11, top + 2:top + 17] = 255
        mask[top:top + 11, top + 2:top + 17] = 1
        yield image, mask


def mean_offset(resize_pair, side: int) -> np.ndarray:
    """The mask's centroid less the image block's, averaged over the block positions."""
    offsets = []
    for image, mask in block_pairs():
        image, mask = resize_pair(image, mask, side)
        offsets.append(centroid(mask) - centroid(image[0]))
    return np.mean(offsets, axis=0)


@pytest.mark.parametrize("side", SIDES)
def test_segment_scale_augmentation_keeps_masks_on_their_images(side):
    """Regression: masks were resized with torchvision's default nearest (the pixel under each output
    pixel's corner) and sat about half a pixel down and right of their images over zooms 1.025-2."""
    def scaled(image, mask, side):
        transform = SegmentTransform("none", (side, side))
        transform.scale = (side / SIDE, side / SIDE)  # this zoom exactly
        return transform(image, mask)

    assert np.abs(mean_offset(scaled, side)).max() < 0.1


def test_resize_mask_is_nearest_exact_for_every_dtype():
    ids = torch.arange(40 * 48).reshape(1, 40, 48)
    for size in ([63, 76], [41, 47], [17, 30], [40, 48]):
        expected = F.resize_mask(ids.float(), size, interpolation=InterpolationMode.NEAREST_EXACT).long()
        assert torch.equal(resize_mask(ids, size), expected)
    assert resize_mask(torch.ones(2, 5, 5, dtype=torch.bool), [7, 3]).dtype == torch.bool


def test_relight_shades_each_image_across_and_keeps_pixels_in_range():
    import torch

    from cnnkit.data.transforms import BatchRelight

    torch.manual_seed(0)
    flat = torch.full((64, 1, 32, 32), 128, dtype=torch.uint8)
    out = BatchRelight(2.0)(flat)
    assert out.shape == flat.shape and out.dtype == torch.float32
    assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0
    left, right = out[..., :4].mean((1, 2, 3)), out[..., -4:].mean((1, 2, 3))
    assert float((left - right).abs().median()) > 0.05  # light from one side: the two sides differ
    assert not torch.allclose(out[0], out[1])  # drawn per image

"""Deletion/insertion AUCs against hand computations on a 4x4 image, the pointing game, the baseline maps."""

import numpy as np
import pytest
import torch

from cnnkit.errors import CnnkitError
from cnnkit.metrics.faithfulness import (
    auc,
    blur,
    centre_map,
    deletion_insertion,
    pixel_order,
    pointing_game,
    random_map,
    road_fill,
)

# a 4x4 image, 1 on the centre 2x2 region and 0 elsewhere; the score is the region's mean (of channel 0)
REGION = np.zeros((4, 4), bool)
REGION[1:3, 1:3] = True
IMAGE = torch.from_numpy(REGION.astype(np.float32)).view(1, 1, 4, 4).repeat(1, 3, 1, 1)


def region_mean(images: torch.Tensor) -> torch.Tensor:
    return images[:, 0][:, torch.from_numpy(REGION)].mean(1)


def test_deletion_region_first_and_last_by_hand():
    # steps = pixels: one pixel per step. Region first: 1, .75, .5, .25, then 0 for 12 steps:
    # AUC = (1/16) * ((1+.75)/2 + (.75+.5)/2 + (.5+.25)/2 + (.25+0)/2) = 2/16
    first = deletion_insertion(region_mean, IMAGE, REGION.astype(float), steps=16, batch=5)
    np.testing.assert_allclose(first["deletion"][:5], [1, 0.75, 0.5, 0.25, 0])
    assert first["deletion_auc"] == pytest.approx(2 / 16)
    # region last: 1 for the 12 background pixels, then the same fall: AUC = (12 + 2) / 16
    last = deletion_insertion(region_mean, IMAGE, (~REGION).astype(float), steps=16)
    assert last["deletion_auc"] == pytest.approx(14 / 16)
    np.testing.assert_allclose(last["fractions"], np.arange(17) / 16)


def test_insertion_region_first_and_last_by_hand():
    # the image is symmetric, so its blur has one value b on the four centre pixels. Region first: the curve
    # climbs b, b + (1-b)/4, ..., 1 in 4 steps, then stays 1: AUC = (2b + 2 + 12) / 16; region last: b for 12
    # steps, then the same climb: AUC = (12b + 2b + 2) / 16
    b = float(blur(IMAGE, 1.0)[0, 0, 1, 1])
    assert 0 < b < 1
    first = deletion_insertion(region_mean, IMAGE, REGION.astype(float), steps=16, blur_sigma=1.0)
    np.testing.assert_allclose(first["insertion"][:5], b + (1 - b) * np.arange(5) / 4, rtol=1e-5)
    assert first["insertion_auc"] == pytest.approx((14 + 2 * b) / 16, rel=1e-5)
    last = deletion_insertion(region_mean, IMAGE, (~REGION).astype(float), steps=16, blur_sigma=1.0)
    assert last["insertion_auc"] == pytest.approx((14 * b + 2) / 16, rel=1e-5)


def test_auc_bounds_and_curve_ends():
    # a score in 0..1 gives AUCs in 0..1; the curves start at the image's (deletion) and end at it (insertion)
    torch.manual_seed(0)
    image = torch.rand(1, 3, 8, 8)
    out = deletion_insertion(region_mean_8, image, random_map((8, 8), 1), steps=7, batch=3)
    for key in ("deletion_auc", "insertion_auc"):
        assert 0 <= out[key] <= 1
    full = float(region_mean_8(image))
    assert out["deletion"][0] == pytest.approx(full) and out["insertion"][-1] == pytest.approx(full)
    assert out["deletion"][-1] == pytest.approx(0) and len(out["deletion"]) == 8
    assert auc(np.array([0, 0.5, 1]), np.array([1, 1, 1])) == pytest.approx(1)


def region_mean_8(images: torch.Tensor) -> torch.Tensor:
    return images[:, :, 2:6, 2:6].mean((1, 2, 3))


def test_ties_are_broken_at_random_not_in_raster_order():
    flat = pixel_order(np.zeros((8, 8)), seed=0)
    assert sorted(flat.ravel()) == list(range(64))
    assert not np.array_equal(flat.ravel(), np.arange(64))  # not raster order
    assert np.array_equal(flat, pixel_order(np.zeros((8, 8)), seed=0))
    ranked = pixel_order(np.arange(16.0).reshape(4, 4))
    assert ranked[3, 3] == 0 and ranked[0, 0] == 15


def test_bad_inputs_are_refused():
    with pytest.raises(CnnkitError, match="differs"):
        deletion_insertion(region_mean, IMAGE, np.zeros((3, 4)))
    with pytest.raises(CnnkitError, match="one value per image"):
        deletion_insertion(lambda x: x.mean((2, 3)), IMAGE, np.zeros((4, 4)))
    with pytest.raises(CnnkitError, match="steps"):
        deletion_insertion(region_mean, IMAGE, np.zeros((4, 4)), steps=0)


def test_road_fill_interpolates_from_the_pixels_left():
    # a smooth ramp: a removed pixel is its neighbours' weighted mean (+ noise of sigma 0.01), so a
    # removed block inside the ramp comes back close to the ramp; black would give 0 there
    ramp = torch.linspace(0, 1, 8).view(1, 1, 1, 8).expand(1, 3, 8, 8).contiguous()
    removed = torch.zeros(8, 8, dtype=torch.bool)
    removed[2:6, 3:6] = True
    filled = road_fill(ramp, removed, seed=1)
    assert filled.shape == ramp.shape
    assert torch.equal(filled[..., ~removed], ramp[..., ~removed])  # the pixels left are untouched
    assert torch.allclose(filled[..., removed], ramp[..., removed], atol=0.05)
    assert torch.equal(filled, road_fill(ramp, removed, seed=1))  # the noise is seeded
    everything = road_fill(ramp, torch.ones(8, 8, dtype=torch.bool))
    assert torch.allclose(everything, ramp.mean((2, 3), keepdim=True).expand_as(ramp))


def test_road_deletion_keeps_a_grey_image_grey():
    # on a flat grey image removing pixels takes nothing away: ROAD's curve stays at 0.5, black's falls to 0
    grey = torch.full((1, 3, 4, 4), 0.5)
    black = deletion_insertion(region_mean, grey, REGION.astype(float), steps=4, fill="black")
    road = deletion_insertion(region_mean, grey, REGION.astype(float), steps=4, fill="road")
    assert black["deletion"][-1] == pytest.approx(0)
    np.testing.assert_allclose(road["deletion"], 0.5, atol=0.03)
    assert road["insertion_auc"] == pytest.approx(black["insertion_auc"])  # insertion does not depend on fill
    with pytest.raises(CnnkitError, match="fill"):
        deletion_insertion(region_mean, grey, REGION.astype(float), fill="white")


def test_pointing_game():
    mask = np.zeros((10, 10), bool)
    mask[6:9, 6:9] = True
    saliency = np.zeros((10, 10))
    saliency[7, 7] = 1
    assert pointing_game(saliency, mask)
    saliency = np.zeros((10, 10))
    saliency[2, 2] = 1
    assert not pointing_game(saliency, mask)
    assert not pointing_game(saliency, mask, tolerance=5)  # nearest mask pixel (6, 6): sqrt(32) > 5
    assert pointing_game(saliency, mask, tolerance=6)
    # of tied maxima the first in row-major order counts
    saliency[8, 8] = 1
    assert not pointing_game(saliency, mask)
    with pytest.raises(CnnkitError, match="empty"):
        pointing_game(saliency, np.zeros((10, 10), bool))


def test_baseline_maps():
    noise = random_map((6, 9), seed=3)
    assert noise.shape == (6, 9) and noise.dtype == np.float32 and 0 <= noise.min() and noise.max() < 1
    assert np.array_equal(noise, random_map((6, 9), seed=3))
    assert not np.array_equal(noise, random_map((6, 9), seed=4))
    centre = centre_map((8, 12))
    assert centre.shape == (8, 12) and centre.max() == pytest.approx(np.exp(-0.0625), rel=1e-5)
    assert np.allclose(centre, centre[::-1]) and np.allclose(centre, centre[:, ::-1])  # symmetric
    odd = centre_map((9, 9))
    assert odd[4, 4] == pytest.approx(1) and odd[4, 4 + 2] == pytest.approx(np.exp(-0.5 * (2 / 2.25) ** 2))

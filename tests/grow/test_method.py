"""The learned segmentation on scenes with known regions: found without labels, grown from seeds, seeds kept."""

from __future__ import annotations

import numpy as np
import pytest

from cnnkit.grow.method import GrowOptions, grow_images, seeds_small
from cnnkit.metrics.matching import confusion, unsupervised_scores
from tests.grow.conftest import point_seeds

FAST = GrowOptions(side=48, iterations=60, batch=4, max_segments=3)


@pytest.fixture(scope="module")
def unsupervised(scenes):
    return grow_images([im for im, _ in scenes], options=FAST)


def test_segments_found_without_labels_match_the_regions(scenes, unsupervised) -> None:
    preds = [labels for labels, _ in unsupervised]
    truths = [truth for _, truth in scenes]
    scores = unsupervised_scores(preds, truths, n_classes=3)
    # three flat colours: a working method matches nearly every pixel (random ids score about 1/3)
    assert scores["one_to_one"]["pixel_acc"] > 0.85, scores
    assert max(int(p.max()) for p in preds) < FAST.max_segments


def test_a_segment_id_means_the_same_region_in_every_image(scenes, unsupervised) -> None:
    # one matching for the whole folder scores as well as one per image: ids are shared
    preds = [labels for labels, _ in unsupervised]
    truths = [truth for _, truth in scenes]
    folder = unsupervised_scores(preds, truths, n_classes=3, per_image=False)
    assert folder["one_to_one"]["pixel_acc"] > 0.85, folder


def test_confidence_is_a_probability_per_pixel(scenes, unsupervised) -> None:
    for (image, _), (labels, confidence) in zip(scenes, unsupervised):
        assert labels.shape == confidence.shape == image.shape[:2]
        assert confidence.dtype == np.float32 and 0 <= confidence.min() and confidence.max() <= 1


@pytest.mark.parametrize("per_class", [1, 3])
def test_seeds_are_kept_and_grow_into_their_regions(scenes, per_class: int) -> None:
    seeds = [point_seeds(truth, per_class, seed=i) for i, (_, truth) in enumerate(scenes)]
    grown = grow_images([im for im, _ in scenes], seeds, n_classes=3, options=FAST)
    conf = sum(confusion(labels, truth, 3, 3) for (labels, _), (_, truth) in zip(grown, scenes))
    assert np.trace(conf) / conf.sum() > 0.85  # class ids are the seeds' own: no matching
    for (labels, confidence), seed in zip(grown, seeds):
        assert (labels[seed > 0] == seed[seed > 0] - 1).all()  # hard constraints
        assert (confidence[seed > 0] == 1).all()


def test_a_seed_that_contradicts_the_image_is_still_kept(scenes) -> None:
    image, truth = scenes[0]
    seeds = point_seeds(truth, 2)
    seeds[truth == 0] = 0
    red = np.argwhere(truth == 0)[len(np.argwhere(truth == 0)) // 2]
    seeds[red[0], red[1]] = 2  # a "blue" seed in the middle of the red part
    seeds[truth == 0 & (seeds == 0)] = 0
    labels, _ = grow_images([image], [seeds], n_classes=3, options=FAST)[0]
    assert labels[red[0], red[1]] == 1


def test_an_image_without_seeds_is_labelled_from_the_others(scenes) -> None:
    seeds = [point_seeds(truth, 3, seed=i) for i, (_, truth) in enumerate(scenes)]
    seeds[-1] = None
    grown = grow_images([im for im, _ in scenes], seeds, n_classes=3, options=FAST)
    labels, truth = grown[-1][0], scenes[-1][1]
    assert (labels == truth).mean() > 0.8


def test_one_pixel_seeds_survive_the_working_resolution() -> None:
    seeds = np.zeros((100, 100), np.int32)
    seeds[1, 1], seeds[98, 99], seeds[50, 50] = 1, 2, 3
    small = seeds_small(seeds, (10, 10))
    assert sorted(small[small >= 0].tolist()) == [0, 1, 2]


def test_options_are_checked() -> None:
    with pytest.raises(ValueError, match="max_segments"):
        GrowOptions(max_segments=1)
    with pytest.raises(ValueError, match="max_segments"):
        GrowOptions(max_segments=255)

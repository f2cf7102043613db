"""Segment-to-class matching and its scores: hand-computed tiny cases, brute force, and scikit-learn."""

import itertools

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, confusion_matrix, jaccard_score

from cnnkit.metrics.matching import (
    confusion,
    match_many_to_one,
    match_one_to_one,
    relabel_confusion,
    scores,
    unsupervised_scores,
)

# 3 segments, 2 classes. conf[segment, class] = [[5, 0], [1, 2], [0, 4]]: the Hungarian method keeps
# segments 0 and 2 (9 pixels) and leaves segment 1 unmatched; many-to-one sends segment 1 to class 1.
TRUTH = np.array([[0, 0, 0, 0],
                  [0, 0, 1, 1],
                  [1, 1, 1, 1]])
PRED = np.array([[0, 0, 0, 1],
                 [0, 0, 1, 1],
                 [2, 2, 2, 2]])


def test_confusion_by_hand():
    assert confusion(PRED, TRUTH, 3, 2).tolist() == [[5, 0], [1, 2], [0, 4]]
    assert confusion(PRED, TRUTH, 3, 2).dtype == np.int64


def test_confusion_skips_ignored_pixels():
    truth = TRUTH.copy()
    truth[0, 3] = truth[2, 0] = 255  # a pixel of segment 1 (class 0) and one of segment 2 (class 1)
    assert confusion(PRED, truth, 3, 2, ignore_index=255).tolist() == [[5, 0], [0, 2], [0, 3]]
    with pytest.raises(ValueError, match="truth values"):
        confusion(PRED, truth, 3, 2)  # 255 is not a class unless ignored


def test_confusion_rejects_out_of_range_segments():
    with pytest.raises(ValueError, match="prediction values"):
        confusion(PRED, TRUTH, 2, 2)


def test_hungarian_and_many_to_one_differ():
    conf = confusion(PRED, TRUTH, 3, 2)
    assert match_one_to_one(conf) == {0: 0, 2: 1}
    assert match_many_to_one(conf) == {0: 0, 1: 1, 2: 1}


def test_unmatched_segment_counts_as_error():
    out = unsupervised_scores([PRED], [TRUTH], n_classes=2)
    one = out["one_to_one"]
    # class 0: tp 5, truth 6, predicted 5 -> 5/6; class 1: tp 4, truth 6, predicted 4 -> 4/6
    assert one["iou"] == pytest.approx([5 / 6, 4 / 6])
    assert one["miou"] == pytest.approx(0.75)
    assert one["pixel_acc"] == pytest.approx(9 / 12)
    assert one["unmatched"] == pytest.approx(3 / 12)
    many = out["many_to_one"]
    # class 0: tp 5, truth 6, predicted 5; class 1: tp 6, truth 6, predicted 7 -> 6/7
    assert many["iou"] == pytest.approx([5 / 6, 6 / 7])
    assert many["miou"] == pytest.approx((5 / 6 + 6 / 7) / 2)
    assert many["pixel_acc"] == pytest.approx(11 / 12)
    assert many["unmatched"] == 0


def test_ignored_pixels_are_not_scored():
    truth = TRUTH.copy()
    truth[1, 2:] = 255  # segment 1's class-1 pixels: it now overlaps class 0 only
    one = unsupervised_scores([PRED], [truth], n_classes=2, ignore_index=255)["one_to_one"]
    # conf = [[5, 0], [1, 0], [0, 4]]: segment 1 unmatched, its one pixel wrong; 10 pixels scored
    assert one["pixel_acc"] == pytest.approx(9 / 10)
    assert one["iou"] == pytest.approx([5 / 6, 1.0])


def test_pair_without_overlap_is_no_match():
    conf = np.array([[4, 0, 0], [3, 0, 0]])  # classes 1 and 2 never occur
    assert match_one_to_one(conf) == {0: 0}
    assert match_many_to_one(conf) == {0: 0, 1: 0}
    assert match_many_to_one(np.array([[2, 1], [0, 0]])) == {0: 0}  # an empty segment maps to nothing


def test_scores_by_hand_with_absent_class():
    conf = np.array([[3, 1, 0],
                     [2, 4, 0],
                     [0, 0, 0]])  # class 2 absent from prediction and truth
    out = scores(conf)
    assert out["iou"][:2] == pytest.approx([3 / 6, 4 / 7])
    assert np.isnan(out["iou"][2])
    assert out["miou"] == pytest.approx((3 / 6 + 4 / 7) / 2)
    assert out["pixel_acc"] == pytest.approx(7 / 10)
    assert np.isnan(scores(np.zeros((2, 2)))["miou"])
    with pytest.raises(ValueError):
        scores(np.zeros((4, 2)))


def test_class_predicted_but_absent_from_truth_scores_zero():
    out = scores(np.array([[3, 0], [0, 0]]))  # class 1 neither predicted nor true
    assert np.isnan(out["iou"][1])
    out = scores(np.array([[3, 0], [2, 0]]))  # class 1 predicted, never true
    assert out["iou"].tolist() == [0.6, 0.0]
    assert out["miou"] == pytest.approx(0.3)


def test_against_sklearn():
    rng = np.random.default_rng(0)
    truth = rng.integers(0, 4, (20, 30))
    pred = np.where(rng.random(truth.shape) < 0.6, truth, rng.integers(0, 4, truth.shape))
    truth[rng.random(truth.shape) < 0.1] = 255
    keep = truth != 255
    conf = confusion(pred, truth, 4, 4, ignore_index=255)
    assert np.array_equal(conf.T, confusion_matrix(truth[keep], pred[keep], labels=range(4)))
    out = scores(conf)
    assert out["iou"] == pytest.approx(jaccard_score(truth[keep], pred[keep], labels=range(4), average=None))
    assert out["miou"] == pytest.approx(jaccard_score(truth[keep], pred[keep], labels=range(4), average="macro"))
    assert out["pixel_acc"] == pytest.approx(accuracy_score(truth[keep], pred[keep]))


def test_unmatched_pixels_score_as_sklearn_with_no_class():
    """Pixels of unmatched segments are predicted as 'no class' (-1): sklearn counts them as false negatives."""
    rng = np.random.default_rng(1)
    truth = rng.integers(0, 3, (15, 17))
    pred = (truth * 2 + (rng.random(truth.shape) < 0.3)) % 5  # 5 segments for 3 classes
    mapping = match_one_to_one(confusion(pred, truth, 5, 3))
    classes = np.array([mapping.get(s, -1) for s in range(5)])[pred]
    out = unsupervised_scores([pred], [truth], n_classes=3)["one_to_one"]
    assert out["iou"] == pytest.approx(jaccard_score(truth.ravel(), classes.ravel(), labels=range(3), average=None))
    assert out["pixel_acc"] == pytest.approx(accuracy_score(truth.ravel(), classes.ravel()))


@pytest.mark.parametrize("shape", [(3, 3), (4, 2), (2, 4)])
def test_hungarian_is_the_best_assignment(shape):
    rng = np.random.default_rng(sum(shape))
    for _ in range(20):
        conf = rng.integers(0, 10, shape)
        got = sum(conf[s, c] for s, c in match_one_to_one(conf).items())
        k = min(shape)
        best = max(sum(conf[s, c] for s, c in zip(rows, cols))
                   for rows in itertools.permutations(range(shape[0]), k)
                   for cols in itertools.combinations(range(shape[1]), k))
        assert got == best
        mapping = match_one_to_one(conf)
        assert len(set(mapping.values())) == len(mapping)  # one segment per class


def test_scores_with_a_no_class_row():
    out = scores(np.array([[3, 0], [0, 0], [1, 0]]))  # one class-0 pixel predicted as no class
    assert out["iou"][0] == pytest.approx(0.75)
    assert np.isnan(out["iou"][1])
    assert out["pixel_acc"] == pytest.approx(0.75)


def test_relabel_confusion_rows():
    conf = np.array([[5, 0], [1, 2], [0, 4]])
    assert relabel_confusion(conf, {0: 0, 2: 1}, 2).tolist() == [[5, 0], [0, 4], [1, 2]]
    assert relabel_confusion(conf, {0: 0, 1: 1, 2: 1}, 2).tolist() == [[5, 0], [1, 6], [0, 0]]


def test_per_image_against_one_matching_for_the_data_set():
    truth = np.array([[0, 0, 1, 1]] * 2)
    first, second = truth.copy(), 1 - truth  # the same segmentation, its ids swapped in the second image
    per_image = unsupervised_scores([first, second], [truth, truth], n_classes=2)
    assert per_image["one_to_one"]["miou"] == 1.0
    shared = unsupervised_scores([first, second], [truth, truth], n_classes=2, per_image=False)
    assert shared["one_to_one"]["pixel_acc"] == pytest.approx(0.5)
    assert shared["many_to_one"]["pixel_acc"] == pytest.approx(0.5)


def test_images_of_different_sizes_and_segment_counts():
    truths = [np.array([[0, 1], [1, 1]]), np.array([[1, 0, 0]])]
    preds = [np.array([[3, 1], [1, 1]]), np.array([[0, 1, 1]])]
    out = unsupervised_scores(preds, truths, n_classes=2)
    assert out["one_to_one"]["pixel_acc"] == 1.0
    assert out["many_to_one"]["miou"] == 1.0
    with pytest.raises(ValueError):
        unsupervised_scores(preds, truths[:1], n_classes=2)

import csv

import numpy as np
import pytest
import torch

from cnnkit.errors import CnnkitError
from cnnkit.metrics.clicks import (
    MAX_CLICKS,
    Click,
    NocMetrics,
    click_maps,
    clicks_to_reach,
    first_click,
    mask_iou,
    next_click,
    simulate,
)


def rect(shape, rows, cols):
    mask = np.zeros(shape, bool)
    mask[rows[0]:rows[1] + 1, cols[0]:cols[1] + 1] = True
    return mask


# a 7 x 9 object: rows 4..10, columns 3..11 of a 15 x 15 image. A pixel's distance to the nearest pixel off
# the object is min(rows to the edge, columns to the edge): rows give 1 2 3 4 3 2 1 (row 7 deepest, 4),
# columns 1 2 3 4 5 4 3 2 1, so depth 4 is reached at row 7, columns 6, 7 and 8: row-major, (7, 6) first.
OBJECT = rect((15, 15), (4, 10), (3, 11))


def test_first_click_is_the_deepest_pixel_first_of_ties():
    assert first_click(OBJECT) == Click(7, 6, True)
    assert next_click(OBJECT, np.zeros_like(OBJECT)) == Click(7, 6, True)


def test_first_click_on_a_square_is_its_centre():
    assert first_click(rect((12, 12), (2, 6), (3, 7))) == Click(4, 5, True)


def test_the_image_border_counts_as_an_edge():
    # without the one-pixel padding the corner object's deepest pixel would be its far corner (4, 4)
    assert first_click(rect((10, 10), (0, 4), (0, 4))) == Click(2, 2, True)


def test_positive_click_in_the_missed_part():
    # pred holds columns 3..5: the missed part is rows 4..10 x columns 6..11, whose column depths are
    # 1 2 3 3 2 1 (column 5 is predicted, so it is an edge too); depth 3 first at row 6, column 8
    pred = rect((15, 15), (4, 10), (3, 5))
    assert next_click(OBJECT, pred) == Click(6, 8, True)


def test_larger_false_positive_gives_a_negative_click():
    gt = rect((20, 20), (2, 8), (2, 10))
    pred = gt.copy()
    pred[2] = False  # missed: a 1-px strip, depth 1
    pred |= rect((20, 20), (12, 16), (12, 16))  # taken: a 5 x 5 square, depth 3 at its centre
    assert next_click(gt, pred) == Click(14, 14, False)


def test_a_tie_is_negative():
    gt = rect((12, 12), (1, 3), (1, 3))
    pred = rect((12, 12), (7, 9), (7, 9))
    assert next_click(gt, pred) == Click(8, 8, False)


def test_clicked_pixels_are_not_chosen_again():
    assert next_click(OBJECT, np.zeros_like(OBJECT), clicked=[Click(7, 6, True)]) == Click(7, 7, True)


def test_ignored_pixels_are_not_errors():
    pred = np.zeros_like(OBJECT)
    valid = ~rect((15, 15), (0, 14), (0, 7))  # only columns 8..14 count
    click = next_click(OBJECT, pred, valid=valid)
    assert click is not None and click.x >= 8 and click.positive


def test_nothing_to_correct():
    assert next_click(OBJECT, OBJECT.copy()) is None
    assert first_click(np.zeros((5, 5), bool)) is None


def test_shapes_are_checked():
    with pytest.raises(CnnkitError, match="differs"):
        next_click(OBJECT, np.zeros((3, 3), bool))
    with pytest.raises(CnnkitError, match=r"\(H, W\)"):
        next_click(np.zeros((2, 3, 3)), np.zeros((2, 3, 3)))


def test_click_maps_disks():
    maps = click_maps([Click(10, 10, True), Click(0, 0, False)], (30, 30), radius=5)
    assert maps.shape == (2, 30, 30) and maps.dtype == np.float32
    assert maps[0].sum() == 81  # integer points within 5 of the centre (Gauss's circle problem, r = 5)
    assert maps[0, 10, 15] == 1 and maps[0, 10, 16] == 0 and maps[0, 14, 14] == 0
    assert maps[1].sum() == 26  # a quarter disk clipped by the image's corner
    assert click_maps([], (4, 5)).sum() == 0
    assert click_maps([Click(-20, -20, True)], (4, 5)).sum() == 0


def test_mask_iou():
    a, b = rect((10, 10), (0, 1), (0, 1)), rect((10, 10), (0, 1), (0, 3))
    assert mask_iou(a, b) == pytest.approx(0.5)
    assert mask_iou(np.zeros((3, 3)), np.zeros((3, 3))) == 1.0
    valid = ~rect((10, 10), (0, 9), (2, 9))
    assert mask_iou(a, b, valid) == 1.0


def test_simulate_stops_when_the_object_is_found():
    calls = []

    def segment(clicks, prev):
        calls.append((list(clicks), prev))
        return OBJECT.copy() if len(clicks) >= 3 else np.zeros_like(OBJECT)

    ious = simulate(segment, OBJECT)
    assert ious.shape == (MAX_CLICKS,)
    np.testing.assert_allclose(ious, [0, 0] + [1] * 18)
    assert len(calls) == 3  # after the third nothing is left to correct: no fourth click
    assert calls[0][1] is None and calls[1][1] is not None
    assert [c.positive for c in calls[2][0]] == [True, True, True]
    assert len({(c.y, c.x) for c in calls[2][0]}) == 3  # a pixel is never clicked twice


def test_simulate_makes_min_clicks_then_stops_at_the_iou():
    almost = OBJECT.copy()
    almost[4] = False  # IoU 54 / 63
    calls = []

    def segment(clicks, prev):
        calls.append(len(clicks))
        return almost

    ious = simulate(segment, OBJECT, stop_iou=0.85, min_clicks=5)
    assert calls == [1, 2, 3, 4, 5]
    np.testing.assert_allclose(ious, 54 / 63)
    assert len(simulate(segment, OBJECT, max_clicks=7, stop_iou=0.9)) == 7
    assert calls[-1] == 7  # never reaching 0.90: every click made


def test_clicks_to_reach():
    ious = np.array([[0.5, 0.86, 0.91, 0.95], [0.8, 0.8, 0.8, 0.8], [0.9, 0.9, 0.9, 0.9]])
    assert clicks_to_reach(ious, 0.85).tolist() == [2, 4, 1]
    assert clicks_to_reach(ious, 0.90).tolist() == [3, 4, 1]


def test_noc_metrics(tmp_path):
    a = np.array([0.5, 0.86, 0.91] + [0.95] * 17)
    b = np.full(20, 0.8)
    metrics = NocMetrics()
    metrics.update(torch.tensor(a[None]), None)
    metrics.update(b[None], None)
    out = metrics.compute()
    assert out["noc85"] == pytest.approx((2 + 20) / 2) and out["noc90"] == pytest.approx((3 + 20) / 2)
    assert out["fail85"] == pytest.approx(0.5) and out["objects"] == 2
    assert out["iou@1"] == pytest.approx(0.65) and out["iou@3"] == pytest.approx((0.91 + 0.8) / 2)
    assert out["iou@5"] == pytest.approx((0.95 + 0.8) / 2)
    assert "NoC@85 11.00" in metrics.table()
    (path,) = metrics.save(tmp_path)
    rows = list(csv.DictReader(path.open()))
    assert path.name == "noc.csv" and len(rows) == 2 and float(rows[0]["iou_2"]) == pytest.approx(0.86)
    metrics.reset()
    assert metrics.table() == "" and metrics.compute()["objects"] == 0
    with pytest.raises(CnnkitError, match="clicks"):
        metrics.update(np.zeros(3), None)

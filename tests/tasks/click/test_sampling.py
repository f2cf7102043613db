"""Objects from class masks and instance data, training crops and clicks, and the clicker cut to the errors."""

from __future__ import annotations

import numpy as np

from cnnkit.data.masks import IGNORE, ClassSpec
from cnnkit.metrics.clicks import next_click
from cnnkit.tasks.click.infer import click_near
from cnnkit.tasks.click.sampling import (
    IGNORED,
    background_classes,
    crop_object,
    object_areas,
    random_clicks,
    region_map,
    to_working,
)


def test_each_connected_region_of_an_object_class_is_one_object():
    ids = np.zeros((20, 20), np.uint8)
    ids[1:5, 1:5] = 1
    ids[10:14, 10:14] = 1  # a second region of class 1
    ids[14:16, 14:16] = 1  # touching it diagonally: the same region (8-connected)
    ids[1:5, 10:15] = 2
    ids[18:20, :] = 3  # unlabelled: no object
    ids[0, 19] = IGNORE
    spec = ClassSpec(["background", "car", "tree", "Unlabelled"], [0, 1, 2, 3], [(0, 0, 0)] * 4)
    objects = region_map(ids, background_classes(spec))
    assert background_classes(spec) == {0, 3}
    assert sorted(object_areas(objects).values()) == [16, 20, 20] and objects[0, 19] == IGNORED
    assert objects[10, 10] == objects[15, 15] != objects[1, 1]


def test_a_crop_holds_its_object_and_the_first_clicks_fall_right():
    rng = np.random.default_rng(0)
    objects = np.zeros((120, 90), np.int32)
    objects[30:100, 20:80] = 7  # larger than the crop: shrunk to fit
    objects[5:15, 5:15] = 3
    image = rng.integers(0, 255, (120, 90, 3)).astype(np.uint8)
    for _ in range(20):
        picture, mask = crop_object(image, objects, 7, (40, 40), "light", rng)
        assert picture.shape == (40, 40, 3) and mask.shape == (40, 40)
        assert (mask == 1).any() and not (mask[[0, -1]] == 1).all()
        clicks = random_clicks(mask, rng)
        positive = [c for c in clicks if c.positive]
        assert 1 <= len(positive) <= 3 and len(clicks) - len(positive) <= 2
        assert all(mask[c.y, c.x] == 1 for c in positive) and all(mask[c.y, c.x] != 1 for c in clicks if
                                                                  not c.positive)
        assert IGNORE not in mask[[c.y for c in clicks], [c.x for c in clicks]]


def test_the_clicker_inside_the_error_box_clicks_where_it_would_on_the_whole_image():
    rng = np.random.default_rng(1)
    for _ in range(30):
        gt = np.zeros((60, 70), bool)
        pred = np.zeros((60, 70), bool)
        y, x = rng.integers(0, 40, 2)
        gt[y:y + rng.integers(3, 20), x:x + rng.integers(3, 25)] = True
        y, x = rng.integers(0, 40, 2)
        pred[y:y + rng.integers(1, 20), x:x + rng.integers(1, 25)] = True
        valid = rng.random((60, 70)) > 0.05
        assert click_near(gt, pred, valid=valid) == next_click(gt, pred, valid=valid)


def test_clicks_map_to_the_working_size_by_pixel_centres():
    from cnnkit.metrics.clicks import Click

    assert to_working(Click(0, 0, True), (100, 200), (50, 100)) == Click(0, 0, True)
    assert to_working(Click(99, 199, False), (100, 200), (50, 100)) == Click(49, 99, False)
    assert to_working(Click(10, 10, True), (100, 100), (100, 100)) == Click(10, 10, True)

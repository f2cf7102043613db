"""Clicks to masks: the checked inputs, the seeded clicker on an obvious object, and the model clicker's
contract (a fake click task here; a real click network in test_click_model.py)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

import cnnkit
from cnnkit.annotate import ModelClicker, SeedClicker, click_mask, load_clicker
from cnnkit.annotate.clickers import keep_clicked
from cnnkit.annotate.inputs import as_click, as_clicks, as_prev
from cnnkit.data.synthetic import make_scene
from cnnkit.errors import CnnkitError
from cnnkit.loading import Model
from cnnkit.metrics.clicks import Click, first_click, mask_iou


def disk_scene(height: int = 360, width: int = 480, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A red disk on a green field with a blue band at the left: ``(H, W, 3)`` uint8 and the disk's mask."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:height, :width]
    gt = (yy - height * 0.47) ** 2 + (xx - width * 0.55) ** 2 < (height * 0.2) ** 2
    image = np.where(gt[..., None], [200, 60, 50], [60, 130, 80]).astype(np.float64)
    image[:, : width // 5] = [70, 70, 170]
    return (image + rng.normal(0, 6, image.shape)).clip(0, 255).astype(np.uint8), gt


def centre_click(gt: np.ndarray) -> Click:
    ys, xs = np.nonzero(gt)
    return Click(y=int(np.median(ys)), x=int(np.median(xs)), positive=True)


def test_clicks_are_checked_and_tuples_are_x_y_positive():
    assert as_click((7, 3, False), (10, 10)) == Click(y=3, x=7, positive=False)
    assert as_click({"x": 2, "y": 5}, (10, 10)) == Click(y=5, x=2, positive=True)
    assert as_clicks([Click(1, 2, True)], (10, 10)) == [Click(1, 2, True)]
    with pytest.raises(CnnkitError, match="outside the 10x4 image"):
        as_click((10, 0, True), (4, 10))
    with pytest.raises(CnnkitError, match="whole pixel"):
        as_click((1.5, 2, True), (10, 10))
    with pytest.raises(CnnkitError, match="a list of clicks"):
        as_clicks("1,2", (10, 10))
    with pytest.raises(CnnkitError, match="prev_mask: shape"):
        as_prev(np.zeros((3, 3)), (4, 4))


def test_seed_map_seeds_the_border_and_the_negative_clicks_as_background():
    clicker = SeedClicker(radius=2, border=3)
    seeds = clicker.seeds((20, 30), [Click(10, 15, True)])
    assert seeds[0, 0] == 2 and seeds[19, 29] == 2 and seeds[10, 15] == 1 and seeds[10, 12] == 0
    seeds = clicker.seeds((20, 30), [Click(10, 15, True), Click(10, 8, False)])
    # the border stays background after a negative click (without it a few negative seeds flooded the image)
    assert seeds[0, 20] == 2 and seeds[10, 8] == 2 and seeds[10, 6] == 2 and seeds[10, 15] == 1


def test_a_negative_click_of_the_seed_clicker_only_takes_away():
    # regression: a right click on a neighbouring nucleus turned a 131 px mask into 16,070 of 16,384 px
    image, gt = disk_scene(90, 120)
    first = centre_click(gt)
    prev = SeedClicker()(image, [first], None)
    after = SeedClicker()(image, [first, Click(5, 5, False)], prev)
    assert not (after & ~prev).any()
    assert after.sum() > 0.5 * prev.sum()


def test_seed_clicker_finds_an_obvious_object():
    # small images keep the test short on shared cores; a 360x480 image takes about 1-2 s on 2 free cores
    image, gt = disk_scene(120, 160)
    mask = SeedClicker()(image, [centre_click(gt)], None)
    assert mask.dtype == bool and mask.shape == gt.shape
    assert mask_iou(mask, gt) > 0.7  # about 0.95 measured; the margin is for other seeds and thread counts
    scene = make_scene(0, 0, size=96)  # a shape on a textured background, with distractors
    largest = scene.instances[np.argmax(scene.instances.sum(axis=(1, 2)))]
    found = SeedClicker()(scene.image, [first_click(largest)], None)
    assert mask_iou(found, largest) > 0.5  # about 0.8 measured


def test_seed_clicker_without_a_positive_click_is_empty_and_options_are_checked():
    image, _ = disk_scene(40, 50)
    assert not SeedClicker()(image, [Click(5, 5, False)], None).any()
    with pytest.raises(CnnkitError, match="unknown option"):
        SeedClicker(sidee=64)
    with pytest.raises(CnnkitError, match="side >= 16"):
        SeedClicker(side=4)


def test_keep_clicked_keeps_the_clicked_regions():
    mask = np.zeros((10, 10), bool)
    mask[1:3, 1:3] = mask[6:9, 6:9] = True
    kept = keep_clicked(mask, [Click(7, 7, True), Click(1, 1, False)])
    assert kept[7, 7] and not kept[1, 1] and kept.sum() == 9


def fake_model(task: str = "click", runtime: str = "pytorch") -> SimpleNamespace:
    """A loaded model whose click prediction is a square around the positive clicks (probability 0.8)."""
    calls: list[tuple] = []

    def predict_clicks(module, image, clicks, prev):
        calls.append((module, image, list(clicks), prev))
        prob = np.zeros((image.height, image.width), np.float32)
        for c in clicks:
            prob[max(0, c.y - 2):c.y + 3, max(0, c.x - 2):c.x + 3] = 0.8 if c.positive else 0.0
        return prob

    return SimpleNamespace(task=SimpleNamespace(predict_clicks=predict_clicks), module="net", runtime=runtime,
                           meta=SimpleNamespace(task=task), calls=calls)


def test_model_clicker_calls_the_task_with_the_image_clicks_and_previous_mask():
    model = fake_model()
    clicker = ModelClicker(model, threshold=0.5)  # type: ignore[arg-type]
    image = np.zeros((12, 16, 3), np.uint8)
    prev = np.zeros((12, 16), bool)
    mask = clicker(image, [Click(5, 6, True)], prev)
    assert mask.dtype == bool and mask.sum() == 25 and mask[5, 6]
    module, pil, clicks, passed = model.calls[-1]
    assert module == "net" and isinstance(pil, Image.Image) and pil.size == (16, 12)
    assert clicks == [Click(5, 6, True)] and passed is prev
    assert not ModelClicker(model, threshold=0.9)(image, [Click(5, 6, True)], None).any()  # type: ignore[arg-type]
    assert not clicker(image, [], None).any() and len(model.calls) == 2  # no clicks: the model is not asked


def test_load_clicker_chooses_and_refuses():
    assert isinstance(load_clicker(None), SeedClicker)
    assert isinstance(load_clicker(fake_model()), ModelClicker)  # type: ignore[arg-type]
    with pytest.raises(CnnkitError, match="a segment model, not a click model.*cnnkit train click"):
        load_clicker(fake_model("segment"))  # type: ignore[arg-type]
    with pytest.raises(CnnkitError, match="exported click model.*best.pt"):
        load_clicker(fake_model(runtime="onnx"))  # type: ignore[arg-type]
    with pytest.raises(CnnkitError, match="schema1_segment.pt: a segment model, not a click model"):
        load_clicker("tests/fixtures/schema1_segment.pt")
    with pytest.raises(CnnkitError, match="threshold"):
        load_clicker(fake_model(), threshold=1.0)  # type: ignore[arg-type]


def test_click_mask_and_model_click_take_tuples_in_image_pixels(tmp_path):
    path = tmp_path / "a.png"
    Image.fromarray(np.zeros((12, 16, 3), np.uint8)).save(path)
    model = fake_model()
    mask = cnnkit.click_mask(path, [(6, 5, True)], weights=model)
    assert cnnkit.click_mask is click_mask and cnnkit.Click is Click
    assert mask.shape == (12, 16) and mask[5, 6] and mask.sum() == 25
    loaded = Model.__new__(Model)  # the method's own checks and conversions, without a checkpoint
    loaded.task, loaded.module, loaded.meta = model.task, model.module, model.meta  # type: ignore[assignment]
    assert np.array_equal(loaded.click(np.zeros((12, 16, 3), np.uint8), [(6, 5, True)]), mask)
    assert not loaded.click(path, []).any()
    with pytest.raises(CnnkitError, match="outside"):
        loaded.click(path, [(16, 0, True)])
    loaded.task = SimpleNamespace()  # type: ignore[assignment]
    loaded.meta = SimpleNamespace(task="segment")  # type: ignore[assignment]
    with pytest.raises(CnnkitError, match="takes no clicks"):
        loaded.click(path, [(1, 1, True)])

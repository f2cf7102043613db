"""A real click network (untrained: its answers are not scored) through every way in: a checkpoint file
(``load_clicker``, ``cnnkit.click_mask``) and a loaded model (``Model.click``), at the image's own size."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import cnnkit
from cnnkit.annotate import ModelClicker, load_clicker
from cnnkit.engine.checkpoint import save_checkpoint
from cnnkit.meta import ModelMeta
from cnnkit.metrics.clicks import Click
from cnnkit.models.wrapper import build_image_model
from cnnkit.tasks import get_task


@pytest.fixture(scope="module")
def click_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """best.pt of a click model as `cnnkit train click` writes its card, with random weights."""
    get_task("click")  # registers the clicker network
    meta = ModelMeta.card(task="click", model="clicker", classes=["background", "object"], in_chans=3,
                          mean=[0.4] * 3, std=[0.2] * 3, num_outputs=1, imgsz=32, max_size=48,
                          model_args={"segmenter": "unet_basic", "segmenter_args": {}},
                          extra={"segmenter": "unet_basic", "click_radius": 5.0})
    torch.manual_seed(0)
    module = build_image_model(meta)
    path = tmp_path_factory.mktemp("click") / "best.pt"
    save_checkpoint({"task": "click", "model": module.state_dict(), "meta": meta}, path)
    return path


def test_a_click_checkpoint_answers_at_the_image_size_by_every_way_in(click_weights):
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (40, 60, 3), dtype=np.uint8)  # larger than max_size: scaled and back
    clicks = [Click(20, 30, True), Click(5, 5, False)]
    clicker = load_clicker(click_weights, threshold=0.5)
    assert isinstance(clicker, ModelClicker)
    prob = clicker.probability(image, clicks, None)
    assert prob.shape == (40, 60) and prob.dtype == np.float32 and 0 <= prob.min() <= prob.max() <= 1
    mask = clicker(image, clicks, None)
    assert mask.dtype == bool and np.array_equal(mask, prob > 0.5)
    again = clicker(image, clicks, mask)  # the previous mask goes back in
    assert again.shape == (40, 60)
    model = cnnkit.load(click_weights)
    assert np.array_equal(model.click(image, [(30, 20, True), (5, 5, False)]), mask)
    assert np.array_equal(cnnkit.click_mask(image, clicks, weights=click_weights), mask)
    assert np.array_equal(cnnkit.click_mask(image, clicks, mask, weights=model), again)

"""What ``cnnkit explain`` maps for recognition: the similarity of an image to a reference, as predict embeds them."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from cnnkit.data import synthetic
from cnnkit.engine.task import ExplainRequest
from cnnkit.errors import CnnkitError
from cnnkit.models.wrapper import build_image_model
from cnnkit.tasks import get_task

CARD = {"task": "recognize", "classes": ["a", "b", "c", "d"], "in_chans": 3, "imgsz": 32, "mean": [0.4] * 3,
        "std": [0.2] * 3, "model": "embedder",
        "model_args": {"backbone": "fastnet_small", "dim": 16, "prewhiten": True, "flip_average": True}}


@pytest.fixture(scope="module")
def recognizer():
    """An untrained embedder with prewhitening and flip-averaging, as the task trains them."""
    torch.manual_seed(0)
    return get_task("recognize"), build_image_model(CARD).eval()


def picture(index: int, side: int = 48) -> Image.Image:
    """A scene larger than the model's side, so that the resize to it is part of what is checked."""
    return Image.fromarray(synthetic.make_scene(index, size=side).image)


def test_the_reference_itself_is_similar_one(recognizer):
    task, model = recognizer
    image = picture(0)
    targets = task.explain_targets(model, image, ExplainRequest(reference=image))
    assert targets.labels == ["similarity to reference (1.00)"] and targets.regions == [None]
    assert targets.inputs.shape == (1, 3, 32, 32) and targets.original_size == (48, 48)
    one = targets.score(targets.inputs).detach()
    assert one.shape == (1, 1) and abs(float(one[0, 0]) - 1) < 1e-4


def test_the_similarity_is_predicts_cosine_and_has_gradients(recognizer):
    task, model = recognizer
    image, reference = picture(1), picture(2)
    targets = task.explain_targets(model, image, ExplainRequest(reference=reference))
    a, b = (np.array(p["embedding"]) for p in task.predict(model, [image, reference], None))
    cosine = float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))
    assert targets.labels == [f"similarity to reference ({cosine:.2f})"]
    x = torch.cat([targets.inputs, torch.rand_like(targets.inputs), targets.inputs]).requires_grad_(True)
    three = targets.score(x)
    three.sum().backward()
    got = three.detach()
    assert got.shape == (3, 1) and abs(float(got[0, 0]) - cosine) < 1e-4
    assert float(got[0, 0]) == pytest.approx(float(got[2, 0]), abs=1e-5)
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_without_a_reference_it_says_what_to_give(recognizer):
    task, model = recognizer
    with pytest.raises(CnnkitError, match="give --reference IMAGE"):
        task.explain_targets(model, picture(0), ExplainRequest())


def test_gradcam_maps_the_similarity(recognizer):
    methods = pytest.importorskip("cnnkit.explain.methods")
    task, model = recognizer
    targets = task.explain_targets(model, picture(1), ExplainRequest(reference=picture(2)))
    maps = methods.compute_maps(model, targets, "gradcam")
    assert maps.shape == (1, 32, 32) and np.isfinite(maps).all() and 0 <= maps.min() <= maps.max() <= 1

"""Images whose longer side is under ``MIN_SIDE`` (a 1 px image, a 16 px one): grown to it for the detector, whose
deepest GroupNorm level would otherwise be one pixel (torch raises), and their results mapped back to their size.

Untrained tiny detectors (as in test_explain.py): at a score threshold of 0 they return objects anywhere.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

from cnnkit.data import synthetic
from cnnkit.data.rle import decode_rle
from cnnkit.engine.task import ExplainRequest
from cnnkit.errors import CnnkitError
from cnnkit.models.wrapper import build_image_model
from cnnkit.tasks import get_task
from cnnkit.tasks.instance import MIN_SIDE, InstanceOptions, working_scale, working_size
from cnnkit.tasks.instance.infer import grown_samples
from cnnkit.tasks.instance.runner import InstanceRunner
from cnnkit.tasks.instance.task import detection_losses, forward_with_targets
from tests.tasks.instance.test_explain import card

ALL = InstanceOptions(score_thresh=0.0)


@pytest.fixture(scope="module", params=["instance", "detect"])
def detector(request):
    torch.manual_seed(0)
    return get_task(request.param), build_image_model(card(request.param)).eval()


def small(height: int, width: int) -> Image.Image:
    """A synthetic scene shrunk to ``height`` x ``width`` px."""
    return Image.fromarray(synthetic.make_scene(0, size=96).image).resize((width, height), Image.BILINEAR)


def test_working_scale_grows_the_longer_side_to_min_side_and_still_shrinks_large_images():
    assert working_scale(1, 1, 0) == MIN_SIDE and working_size(1, 1, MIN_SIDE) == (MIN_SIDE, MIN_SIDE)
    factor = working_scale(16, 24, 0)
    assert working_size(16, 24, factor) == (round(16 * MIN_SIDE / 24), MIN_SIDE)
    assert working_scale(1, 1000, 0) == 1.0  # long enough: not grown (a thin image is not blown up)
    assert working_scale(96, 96, 0) == 1.0 and working_scale(2000, 1000, 500) == 0.25
    assert working_scale(10, 20, 5) == MIN_SIDE / 20  # growing wins over a max_size under MIN_SIDE


@pytest.mark.parametrize("size", [(1, 1), (16, 16), (32, 32), (12, 40)])
def test_predict_on_small_images_gives_instances_inside_the_image(detector, size):
    task, model = detector
    height, width = size
    result = task.predict(model, [small(height, width)], ALL)[0]
    assert result["size"] == [width, height]
    assert result["instances"] or size == (1, 1)  # an untrained model finds something in a scene
    for inst in result["instances"]:
        x0, y0, x1, y1 = inst["box"]
        assert 0 <= x0 <= x1 <= width and 0 <= y0 <= y1 <= height, inst["box"]
        if task.name == "instance":
            assert decode_rle(inst["rle"]).shape == (height, width)


def test_explain_targets_on_a_24px_image_runs_at_the_grown_size(detector):
    task, model = detector
    image = small(24, 24)
    try:
        targets = task.explain_targets(model, image, ExplainRequest(options=ALL))
    except CnnkitError as error:  # nothing detected is an answer; a ValueError from GroupNorm is not
        assert "no object detected" in str(error)
        return
    assert targets.inputs.shape == (1, 3, MIN_SIDE, MIN_SIDE) and targets.original_size == (24, 24)
    assert all(r is None or r.shape == (MIN_SIDE, MIN_SIDE) for r in targets.regions)
    assert targets.score(targets.inputs).shape == (1, len(targets.labels))


def test_evaluation_grows_small_images_and_maps_boxes_back(detector):
    task, model = detector
    images = [torch.randint(0, 256, (3, 16, 16), dtype=torch.uint8), torch.randint(0, 256, (3, 24, 40),
                                                                                     dtype=torch.uint8)]
    outputs = task.eval_forward(ALL)(model, images)
    assert len(outputs) == 2
    for image, out in zip(images, outputs):
        boxes = out["boxes"]
        assert len(boxes) and bool((boxes >= 0).all())
        assert bool((boxes[:, [0, 2]] <= image.shape[2]).all()) and bool((boxes[:, [1, 3]] <= image.shape[1]).all())


def test_training_on_one_small_crop_gives_finite_losses():
    torch.manual_seed(0)
    model = build_image_model(card("instance")).train()
    masks = torch.zeros(1, 32, 32, dtype=torch.uint8)
    masks[0, 4:20, 6:18] = 1
    target = {"boxes": torch.tensor([[6.0, 4.0, 18.0, 20.0]]), "labels": torch.tensor([1]), "masks": masks}
    loss = detection_losses(forward_with_targets(model, [torch.rand(3, 32, 32)], [target]), [target])
    assert loss is not None and bool(torch.isfinite(loss))


def test_training_on_a_small_crop_without_objects_keeps_its_empty_masks():
    # regression: interpolating the (0, H, W) masks of an image without objects raised in torch
    empty = {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64),
             "masks": torch.zeros(0, 32, 32, dtype=torch.uint8)}
    images, targets = grown_samples([torch.rand(3, 32, 32)], [empty])
    assert tuple(images[0].shape[-2:]) == (64, 64) and tuple(targets[0]["masks"].shape) == (0, 64, 64)


class WholeImageGraph:
    """An exported detector's stand-in: one object covering the whole working image it is given."""

    def __init__(self):
        self.meta = SimpleNamespace(max_size=0, in_chans=3, pixel_max=0.0, classes=["circle"], extra={})
        self.shapes: list[tuple[int, ...]] = []

    def run(self, x: np.ndarray) -> list[np.ndarray]:
        self.shapes.append(x.shape)
        height, width = x.shape[-2:]
        return [np.array([[0.0, 0.0, width, height]], np.float32), np.array([1]), np.array([0.9], np.float32),
                np.ones((1, 28, 28), np.float32)]


def test_the_exported_runner_grows_small_images_as_predict_does():
    graph = WholeImageGraph()
    out = InstanceRunner(None).predict(graph, [small(16, 16), small(10, 20)], ALL)  # type: ignore[arg-type]
    assert graph.shapes == [(1, 3, MIN_SIDE, MIN_SIDE), (1, 3, MIN_SIDE // 2, MIN_SIDE)]
    assert out[0]["instances"][0]["box"] == [0, 0, 16, 16] and out[1]["instances"][0]["box"] == [0, 0, 20, 10]
    mask = decode_rle(out[1]["instances"][0]["rle"])
    assert mask.shape == (10, 20) and mask.all()

"""What ``cnnkit explain`` maps for instance and detect: one target per detection, scored by its matched detection.

Untrained tiny detectors: an untrained R-CNN scores about 1 / (classes + 1) everywhere, so at a score threshold
of 0 it returns objects whose scores, boxes and gradients are what these tests need.
"""

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
from cnnkit.tasks.instance import InstanceOptions
from cnnkit.tasks.instance.explain import MAX_TARGETS

SHAPES = ["circle", "square", "triangle", "star"]
ALL = InstanceOptions(score_thresh=0.0)  # untrained: keep whatever it finds


def card(task: str) -> dict:
    masks = task == "instance"
    return {"task": task, "classes": SHAPES, "in_chans": 3, "imgsz": 96, "crop": [96, 96], "max_size": 0,
            "mean": [0.4] * 3, "std": [0.2] * 3, "extra": {"detections": 20},
            "model": "maskrcnn_resnet18" if masks else "fasterrcnn_resnet18",
            "model_args": {"detections": 20, "fpn_channels": 16, **({"mask_channels": 8} if masks else {})}}


@pytest.fixture(scope="module", params=["instance", "detect"])
def detector(request):
    torch.manual_seed(0)
    return get_task(request.param), build_image_model(card(request.param)).eval()


@pytest.fixture(scope="module")
def scene() -> Image.Image:
    """An 80 x 96 scene of shapes (not square, so that a swapped height and width would show)."""
    return Image.fromarray(synthetic.make_scene(0, size=96).image[:80])


def test_targets_are_the_predicted_detections_by_score(detector, scene):
    task, model = detector
    instances = task.predict(model, [scene], ALL)[0]["instances"]
    targets = task.explain_targets(model, scene, ExplainRequest(options=ALL))
    n = min(MAX_TARGETS, len(instances))
    assert n > 1 and len(targets.labels) == len(targets.regions) == n
    assert targets.labels == [f"{i['class']} #{k + 1} ({i['score']:.2f})" for k, i in enumerate(instances[:n])]
    assert targets.inputs.shape == (1, 3, 80, 96) and 0 <= targets.inputs.min() <= targets.inputs.max() <= 1
    assert targets.original_size == (80, 96)
    for region in targets.regions:
        assert region.shape == (80, 96) and region.dtype == bool and region.any()
    if task.name == "detect":  # no masks: the region is the box
        x0, y0, x1, y1 = np.round(instances[0]["box"]).astype(int)
        assert targets.regions[0][y0:y1, x0:x1].all() and targets.regions[0].sum() == (y1 - y0) * (x1 - x0)


def test_the_unchanged_image_scores_its_own_detections(detector, scene):
    """IoU 1 with itself: each target's score is its detection's, in a batch of one or of three."""
    task, model = detector
    instances = task.predict(model, [scene], ALL)[0]["instances"]
    targets = task.explain_targets(model, scene, ExplainRequest(options=ALL))
    want = torch.tensor([i["score"] for i in instances[:len(targets.labels)]])
    one = targets.score(targets.inputs)
    assert one.shape == (1, len(want)) and one.grad_fn is not None
    torch.testing.assert_close(one[0].detach(), want, atol=1e-3, rtol=0)
    batch = torch.cat([targets.inputs, torch.zeros_like(targets.inputs), targets.inputs])
    three = targets.score(batch)
    assert three.shape == (3, len(want)) and bool(torch.isfinite(three).all()) and bool((three >= 0).all())
    torch.testing.assert_close(three[2].detach(), want, atol=1e-3, rtol=0)
    model.zero_grad()
    three.sum().backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.net.backbone.parameters())
    assert model.net.roi_heads.has_mask() == (task.name == "instance")  # scoring skips masks on a copy only


def test_gradients_reach_the_image(detector, scene):
    task, model = detector
    targets = task.explain_targets(model, scene, ExplainRequest(options=ALL))
    x = targets.inputs.clone().requires_grad_(True)
    targets.score(x)[0, 0].backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_a_target_keeps_a_class_or_one_detection(detector, scene):
    task, model = detector
    instances = task.predict(model, [scene], ALL)[0]["instances"]
    name = instances[1]["class"]
    of_class = task.explain_targets(model, scene, ExplainRequest(target=name, options=ALL))
    want = [k for k, i in enumerate(instances) if i["class"] == name][:MAX_TARGETS]
    assert of_class.labels == [f"{name} #{k + 1} ({instances[k]['score']:.2f})" for k in want]
    by_index = task.explain_targets(model, scene, ExplainRequest(target=str(SHAPES.index(name)), options=ALL))
    assert by_index.labels == of_class.labels
    second = task.explain_targets(model, scene, ExplainRequest(target="#2", options=ALL))
    assert second.labels == [f"{name} #2 ({instances[1]['score']:.2f})"]
    assert second.score(second.inputs).shape == (1, 1)


@pytest.mark.parametrize(("target", "options", "match"), [
    ("#99", ALL, "#99: .* numbered #1 to"), ("#0", ALL, "#0"), ("hexagon", ALL, "hexagon: not a class"),
    ("", InstanceOptions(score_thresh=1.0), "no object detected above --score-thresh 1")])
def test_a_target_that_matches_nothing_is_refused(detector, scene, target, options, match):
    task, model = detector
    with pytest.raises(CnnkitError, match=match):
        task.explain_targets(model, scene, ExplainRequest(target=target, options=options))


def test_options_as_a_dict_and_the_defaults(detector, scene):
    """``request.options`` may be the keywords of ``Model.predict``; without options, predict's defaults."""
    task, model = detector
    as_dict = task.explain_targets(model, scene, ExplainRequest(options={"score_thresh": 0.0}))
    assert as_dict.labels == task.explain_targets(model, scene, ExplainRequest(options=ALL)).labels
    with pytest.raises(CnnkitError, match="--score-thresh 0.5"):  # untrained: no score reaches the default 0.5
        task.explain_targets(model, scene, ExplainRequest())


def test_gradcam_maps_each_detection(detector, scene):
    methods = pytest.importorskip("cnnkit.explain.methods")
    task, model = detector
    targets = task.explain_targets(model, scene, ExplainRequest(target="#1", options=ALL))
    maps = methods.compute_maps(model, targets, "gradcam")
    assert maps.shape == (1, 80, 96) and np.isfinite(maps).all() and 0 <= maps.min() <= maps.max() <= 1


def test_an_image_predict_would_tile_is_explained_shrunk_to_four_crops(detector):
    # regression (user trial): a 4000 x 3000 image was explained whole, found nothing and ran out of memory
    task, model = detector
    big = Image.fromarray(np.tile(synthetic.make_scene(0, size=96).image, (4, 5, 1)))  # 384 x 480: 20 crops
    options = InstanceOptions(score_thresh=0.0)
    try:
        targets = task.explain_targets(model, big, ExplainRequest(options=options))
    except CnnkitError as e:  # an untrained detector may find nothing: then the message says why
        assert "shrunk to" in str(e) and "predict tiles it" in str(e)
        return
    h, w = targets.inputs.shape[-2:]
    assert h * w <= 4 * 96 * 96 + 2 * (h + w) and targets.original_size == (384, 480)

"""Every method maps any task's targets; the default layer; the model is left as it was."""

import numpy as np
import pytest
import torch
from PIL import Image

from cnnkit.engine.task import ExplainRequest, ExplainTargets
from cnnkit.errors import CnnkitError
from cnnkit.explain.methods import METHODS, compute_maps, default_layer, find_layer, scaled
from cnnkit.meta import ModelMeta
from cnnkit.models import create_model
from cnnkit.models.wrapper import ImageModel
from cnnkit.tasks import get_task
from tests.explain.helpers import GREY, brightness_model, classifier, segmenter


def scene(seed: int = 0, size: tuple[int, int] = (32, 32)) -> Image.Image:
    rng = np.random.default_rng(seed)
    array = (rng.uniform(0, 60, (*size, 3))).astype(np.uint8)
    array[8:20, 10:24] = 230
    return Image.fromarray(array)


@pytest.fixture(scope="module")
def models():
    return {"classify": classifier(), "segment": segmenter()}


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("task", ["classify", "segment"])
def test_every_method_maps_every_target_in_0_1(models, task, method):
    model = models[task]
    request = ExplainRequest(target="" if task == "classify" else "circle", topk=2)
    targets = get_task(task).explain_targets(model, scene(), request)
    maps = compute_maps(model, targets, method)
    assert maps.shape == (len(targets.labels), 32, 32) and maps.dtype == np.float32
    assert np.isfinite(maps).all() and maps.min() >= 0 and maps.max() <= 1
    assert len(targets.labels) == (2 if task == "classify" else 1)


@pytest.mark.parametrize("method", METHODS)
def test_the_maps_point_at_the_bright_square(method):
    """A model whose 'bright' logit is the mean brightness: every method's map peaks inside the bright square
    (placed off the diagonal, so that a transposed map would miss it)."""
    model = brightness_model()
    array = np.zeros((32, 32, 3), np.float32)
    array[20:28, 4:12] = 1.0
    inputs = torch.from_numpy(array).permute(2, 0, 1)[None]
    targets = ExplainTargets(inputs=inputs, labels=["bright"], score=lambda x: model(x)[:, [1]], regions=[None])
    maps = compute_maps(model, targets, method)
    y, x = np.unravel_index(maps[0].argmax(), maps[0].shape)
    assert 20 <= y < 28 and 4 <= x < 12, (method, y, x)


def test_default_layer_is_the_last_stage_of_the_trunk():
    assert default_layer(create_model("resnet18", num_classes=3)) == "layer4"  # probed at 224 px: 7x7
    assert default_layer(classifier().net) == "features.3"  # basic_cnn: the last block of its features
    assert default_layer(classifier("basic_cnn", preset="small").net) == "features.3"
    assert default_layer(segmenter().net) == "encoder.stages.4"  # the pooling after it returns indices too
    assert default_layer(brightness_model().net) == "features"  # no trunk cnnkit knows: the last 4-D output


def test_an_unknown_layer_says_the_closest_names():
    net = create_model("resnet18", num_classes=3)
    assert find_layer(net, "layer3") is net.layer3
    with pytest.raises(CnnkitError, match=r"--layer layer5: .*did you mean layer4.*cnnkit summary resnet18"):
        find_layer(net, "layer5", "resnet18")


def test_a_layer_without_a_feature_map_is_refused(models):
    model = models["classify"]
    targets = get_task("classify").explain_targets(model, scene(), ExplainRequest())
    with pytest.raises(CnnkitError, match="classifier.2: its output is a 2-D tensor"):
        compute_maps(model, targets, "gradcam", "classifier.2")


def test_the_model_is_left_as_it_was(models):
    model = models["classify"]
    model.train()
    frozen = {n: p.requires_grad for n, p in model.named_parameters()}
    before = [p.detach().clone() for p in model.parameters()]
    targets = get_task("classify").explain_targets(model, scene(), ExplainRequest(topk=3))
    for method in ("gradcam", "ig"):
        compute_maps(model, targets, method)
    assert model.training and all(m.training for m in model.modules())
    assert {n: p.requires_grad for n, p in model.named_parameters()} == frozen
    assert all(p.grad is None for p in model.parameters())
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))
    assert not any(m._forward_hooks for m in model.modules())
    model.eval()


def test_scaling_and_no_targets():
    maps = scaled(np.array([[[2.0, 4.0], [6.0, np.nan]], [[3.0, 3.0], [3.0, 3.0]]]))
    assert np.allclose(maps, [[[1 / 3, 2 / 3], [1.0, 0.0]], [[0.0, 0.0], [0.0, 0.0]]]) and maps.dtype == np.float32
    empty = ExplainTargets(inputs=torch.zeros(1, 3, 8, 8), labels=[], score=lambda x: x[:, :0, 0, 0], regions=[])
    assert compute_maps(classifier(), empty).shape == (0, 8, 8)


def test_an_unknown_method_is_refused(models):
    targets = get_task("classify").explain_targets(models["classify"], scene(), ExplainRequest())
    with pytest.raises(CnnkitError, match="did you mean gradcam"):
        compute_maps(models["classify"], targets, "gradcan")


def test_default_layer_is_the_last_stage_of_at_least_7_px_at_the_working_size():
    resnet = create_model("resnet18", num_classes=3)
    assert default_layer(resnet, 224) == "layer4" and default_layer(resnet, (128, 128)) == "layer3"  # 7, 8 px
    assert default_layer(resnet, 32) == "layer1" and default_layer(resnet, 8) == "relu"  # none of 7 px: the largest
    net = segmenter().net  # stages at 32 px: 32, 16, 8, 4, 2 px (it pads smaller inputs to 32 px)
    assert default_layer(net, 32) == "encoder.stages.2" and default_layer(net, (64, 64)) == "encoder.stages.3"


def test_segment_maps_at_the_default_layer_are_not_blank(models):
    """The default layer was the encoder's last stage whatever the input: 1x1 at 32 px, every map all zero."""
    targets = get_task("segment").explain_targets(models["segment"], scene(), ExplainRequest())
    assert compute_maps(models["segment"], targets).max(axis=(1, 2)).min() > 0


def test_a_layer_of_1x1_at_this_input_is_refused_with_an_earlier_stage():
    meta = ModelMeta.card(task="classify", model="resnet18", classes=["a", "b", "c"], in_chans=3, imgsz=32, **GREY)
    model = ImageModel(create_model("resnet18", num_classes=3), meta).eval()
    targets = get_task("classify").explain_targets(model, scene(), ExplainRequest())
    with pytest.raises(CnnkitError, match=r"--layer layer4: its map is 1x1 at this input \(32x32 px\).*"
                                          r"such as layer1 \(the default"):
        compute_maps(model, targets, "gradcam", "layer4")


def test_grad_cam_of_a_class_without_positive_evidence_is_flat():
    model = brightness_model()
    inputs = torch.ones(1, 3, 16, 16)
    targets = ExplainTargets(inputs=inputs, labels=["dark"], score=lambda x: model(x)[:, [0]], regions=[None])
    assert not compute_maps(model, targets, "gradcam").any()  # Explanation.flat says so (test_core)

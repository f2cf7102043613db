"""explain_images, Model.explain and Explanation; what each task explains."""

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

import cnnkit
from cnnkit.cli.explain import notes
from cnnkit.engine.task import ExplainRequest
from cnnkit.errors import CnnkitError
from cnnkit.explain.core import Explanation, explain_images, jet, slug
from cnnkit.export.runtime import OnnxModel, TorchScriptModel
from cnnkit.tasks import get_task
from tests.explain.helpers import segmenter
from tests.export.helpers import write_checkpoint


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return cnnkit.load(write_checkpoint(tmp_path_factory.mktemp("ckpt"), "classify"), device="cpu")


def picture(width: int = 48, height: int = 40) -> np.ndarray:
    rng = np.random.default_rng(1)
    array = rng.integers(0, 80, (height, width, 3), dtype=np.uint8)
    array[10:30, 5:25] = 220
    return array


def test_model_explain_gives_maps_at_the_image_size(model, tmp_path):
    [done] = model.explain(picture(), method="gradcam", topk=2)
    assert isinstance(done, Explanation) and done.method == "gradcam" and done.layer == "blocks.1"
    assert done.maps.shape == (2, 40, 48) and done.maps.dtype == np.float32
    assert 0 <= done.maps.min() and done.maps.max() <= 1 and len(done.labels) == 2
    assert done.labels[0].split(" (")[0] in model.classes and done.regions == [None, None]
    overlay = done.overlay(1)
    assert overlay.mode == "RGB" and overlay.size == (48, 40)
    files = done.save(tmp_path / "out", "sub/photo")
    assert [p.suffix for p in files] == [".png", ".npy"] * 2
    assert files[0].name == f"photo_0_{slug(done.labels[0])}.png" and files[0].parent.name == "sub"
    assert np.array_equal(np.load(files[3]), done.maps[1])


def test_an_explanation_leaves_predictions_as_they_were(model):
    image = picture()
    before = model.predict(image)[0]["topk"]
    for method in ("gradcam", "ig"):
        model.explain(image, method=method, target="square")
    assert model.predict(image)[0]["topk"] == before
    assert not model.module.training and not any(m._forward_hooks for m in model.module.net.modules())


def test_targets_by_name_or_index_and_unknown_ones(model):
    assert model.explain(picture(), target="star")[0].labels[0].startswith("star (")
    assert model.explain(picture(), target=1)[0].labels[0].startswith("square (")
    with pytest.raises(CnnkitError, match=r"--target strar: not a class .*did you mean star"):
        model.explain(picture(), target="strar")


def test_pixel_methods_take_no_layer(model):
    done = explain_images(model, [Image.fromarray(picture())], "ig", ExplainRequest(), layer="blocks.1")[0]
    assert done.layer == "" and done.maps.shape == (1, 40, 48)
    with pytest.raises(CnnkitError, match="did you mean"):
        explain_images(model, [picture()], "gradcam", layer="block.1")


@pytest.mark.parametrize("binary", [False, True])
def test_segment_explains_each_predicted_class_over_its_pixels(binary):
    net = segmenter(binary)
    task = get_task("segment")
    image = Image.fromarray(picture())
    every = task.explain_targets(net, image, ExplainRequest())
    assert every.inputs.shape == (1, 3, 40, 48) and every.original_size == (40, 48)
    assert all(r.shape == (40, 48) and r.dtype == bool for r in every.regions)
    assert len(every.labels) == len(every.regions) == every.score(every.inputs).shape[1] >= 1
    for name in net.meta.classes:
        targets = task.explain_targets(net, image, ExplainRequest(target=name))
        assert targets.labels[0].startswith(f"{name} (") and targets.labels[0].endswith("% of pixels)")
        if binary and targets.regions[0].any():  # the mean (signed) foreground logit where the class wins
            with torch.no_grad():
                assert float(targets.score(targets.inputs)[0, 0]) >= 0
    with pytest.raises(CnnkitError, match="--target cat: not a class"):
        task.explain_targets(net, image, ExplainRequest(target="cat"))


def test_pretraining_has_nothing_to_explain():
    fake = SimpleNamespace(meta=SimpleNamespace(model="resnet18"))
    with pytest.raises(CnnkitError, match="pretraining checkpoint has no classes to explain.*--features"):
        get_task("pretrain").explain_targets(fake, Image.new("RGB", (8, 8)), ExplainRequest())


def test_jet_runs_from_blue_to_red():
    colours = jet(np.array([0.0, 0.5, 1.0]))
    assert colours[0].argmax() == 2 and colours[2].argmax() == 0 and colours[1][1] == 255
    assert slug("traffic light (0.93)") == "traffic-light" and slug("(0.5)") == "target"


def test_grey_16_bit_images_overlay():
    image = Image.fromarray(np.full((6, 5), 4000, np.uint16))
    done = Explanation(image, np.zeros((1, 6, 5), np.float32), ["a"], "gradcam", "x", [None])
    assert done.overlay().size == (5, 6) and done.overlay().mode == "RGB"


@pytest.mark.parametrize("topk", [0, -1, 2.5, "2", True])
def test_topk_must_be_a_whole_number_of_at_least_1(model, topk):
    with pytest.raises(CnnkitError, match=f"topk={topk!r}: give a whole number of at least 1"):
        model.explain(picture(), topk=topk)


def test_a_reference_is_refused_but_for_recognition(model):
    with pytest.raises(CnnkitError, match="reference: only a recognition model .* this is a classify model"):
        model.explain(picture(), reference=picture())


@pytest.mark.parametrize("kind", [OnnxModel, TorchScriptModel])
def test_an_exported_model_says_explanations_need_the_checkpoint(kind):
    exported = SimpleNamespace(path=Path("best.onnx"))
    with pytest.raises(CnnkitError, match=r"best.onnx: explanations need the PyTorch checkpoint \(best.pt\)"):
        kind.explain(exported, picture(), method="gradcam")


def test_save_has_a_default_stem_and_flat_and_nowhere_maps_are_told(tmp_path):
    maps = np.stack([np.zeros((6, 5), np.float32), np.full((6, 5), 0.5, np.float32)])
    regions = [np.zeros((6, 5), bool), None]
    done = Explanation(Image.new("RGB", (5, 6)), maps, ["star (0.01)", "circle (0.9)"], "gradcam", "blocks.1", regions)
    assert done.flat == [True, False] and done.nowhere == [True, False]
    assert [p.name for p in done.save(tmp_path)][:2] == ["image_0_star.png", "image_0_star.npy"]
    said = notes(done)
    assert said[0] == "star (0.01): predicted nowhere in the image, so it is explained over the whole image"
    assert said[1] == ("star (0.01): the map is flat: gradcam found no evidence for it at blocks.1 (Grad-CAM keeps "
                       "only positive evidence); try --method occlusion") and len(said) == 2


def test_options_an_explanation_would_not_honour_are_refused(model, tmp_path):
    # regression (user trial): --mode/--tile/--tta were taken and silently not honoured
    with pytest.raises(CnnkitError, match="tta: explanations run on the whole image"):
        model.explain(picture(), tta=True)
    seg = cnnkit.load(write_checkpoint(tmp_path, "segment"), device="cpu")
    with pytest.raises(CnnkitError, match="mode: explanations run on the whole image"):
        seg.explain(picture(), mode="whole")
    with pytest.raises(CnnkitError, match="topk: a segment model has no top-k classes"):  # the API did ignore it
        seg.explain(picture(), topk=2)


def test_a_target_and_topk_together_are_refused(model):
    with pytest.raises(CnnkitError, match="give one of them"):
        model.explain(picture(), target=0, topk=2)

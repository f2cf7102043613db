"""The click task end to end: training, the NoC protocol in `cnnkit val`, predict_clicks, and what it refuses."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

import cnnkit
from cnnkit.cli.main import main
from cnnkit.config import make_config
from cnnkit.errors import CnnkitError
from cnnkit.meta import ModelMeta
from cnnkit.metrics.clicks import Click, first_click, simulate
from cnnkit.tasks import get_task
from cnnkit.tasks.click.infer import noc_forward
from tests.tasks.click.conftest import TINY


def val_objects(boxes, k: int) -> tuple[Image.Image, list[np.ndarray]]:
    """Validation image ``k`` of the boxes and the mask of each of its boxes (connected regions)."""
    from scipy import ndimage

    image = Image.open(boxes / "val" / "images" / f"{k:03d}.png")
    labels, n = ndimage.label(np.asarray(Image.open(boxes / "val" / "masks" / f"{k:03d}.png")) == 1,
                              structure=np.ones((3, 3)))
    return image, [labels == i for i in range(1, n + 1)]


def test_the_checkpoint_is_a_clicker_around_the_segmenter(clicker_run):
    model = cnnkit.load(clicker_run / "best.pt")
    meta = model.meta
    assert (meta.task, meta.model, meta.num_outputs, list(meta.classes)) == ("click", "clicker", 1,
                                                                              ["background", "object"])
    assert meta.value("segmenter", "") == "unet_basic" and meta.value("click_radius", 0.0) == 5.0
    assert dict(meta.model_args)["segmenter_args"] == TINY
    figures = list((clicker_run / "noc.csv").read_text().splitlines())
    assert figures[0].startswith("object,iou_1,iou_2") and len(figures) > 1


def test_val_prints_the_noc_protocol(clicker_run, boxes, tmp_path, capsys):
    assert main(["val", "--weights", str(clicker_run / "best.pt"), "--data", str(boxes), "--out",
                 str(tmp_path / "val")]) == 0
    out = capsys.readouterr().out
    assert "NoC@85" in out and "NoC@90" in out
    figures = json.loads((tmp_path / "val" / "metrics.json").read_text())
    assert 1 <= figures["noc85"] <= figures["noc90"] <= 20 and figures["objects"] > 8  # every box of val/


def test_predict_clicks_answers_at_the_image_size(clicker_run):
    model = cnnkit.load(clicker_run / "best.pt")
    for size in ((48, 48), (700, 300)):  # the second shrunk to the 512 px working size and back
        image = Image.new("RGB", size, (20, 20, 20))
        prob = model.task.predict_clicks(model.module, image, [Click(size[1] // 2, size[0] // 2, True)], None)
        assert prob.shape == (size[1], size[0]) and prob.dtype == np.float32
        assert 0.0 <= prob.min() and prob.max() <= 1.0
        again = model.task.predict_clicks(model.module, image, [Click(1, 2, False)], prob > 0.5)
        assert again.shape == prob.shape
    blank = model.task.predict_clicks(model.module, Image.new("RGB", (8, 6)), [], None)
    assert blank.shape == (6, 8) and not blank.any()  # no click, no object


def test_more_correct_clicks_give_a_better_mask(clicker_run, boxes):
    """The simulated clicker's clicks on each validation box raise the IoU (loosely: on average, by click 5)."""
    model = cnnkit.load(clicker_run / "best.pt")
    rows = []
    for k in range(4):
        image, masks = val_objects(boxes, k)
        for gt in masks:
            def segment(clicks, prev, image=image):
                return model.task.predict_clicks(model.module, image, clicks, prev) > 0.5
            rows.append(simulate(segment, gt, max_clicks=5, stop_iou=1.01))
    ious = np.array(rows)
    assert ious[:, -1].mean() >= ious[:, 0].mean() - 0.02 and ious[:, -1].mean() > 0.5, ious.mean(0)


def test_predictions_from_an_image_alone_are_refused(clicker_run, tmp_path, capsys):
    model = cnnkit.load(clicker_run / "best.pt")
    image = Image.new("RGB", (32, 32))
    with pytest.raises(CnnkitError, match="cnnkit annotate --weights"):
        model.predict(image)
    picture = tmp_path / "a.png"
    image.save(picture)
    assert main(["predict", "--weights", str(clicker_run / "best.pt"), str(picture), "--out",
                 str(tmp_path / "out")]) == 2
    assert "click_mask" in capsys.readouterr().err
    from cnnkit.engine.task import ExplainRequest

    with pytest.raises(CnnkitError, match="nothing to explain without clicks"):
        model.task.explain_targets(model.module, image, ExplainRequest())


def test_clicks_outside_the_image_and_masks_of_another_size_are_refused(clicker_run):
    model = cnnkit.load(clicker_run / "best.pt")
    image = Image.new("RGB", (40, 30))
    with pytest.raises(CnnkitError, match="outside the 40x30 image"):
        model.task.predict_clicks(model.module, image, [Click(30, 5, True)], None)
    with pytest.raises(CnnkitError, match=r"\(30, 40\)"):
        model.task.predict_clicks(model.module, image, [Click(3, 5, True)], np.zeros((40, 30)))


def test_a_model_that_is_no_segmenter_is_refused(tmp_path):
    for model, words in (("resnet18", "wraps a segmenter"), ("clicker", "built around another model")):
        with pytest.raises(CnnkitError, match=words):
            cnnkit.train(task="click", data="shapes:8", model=model, epochs=1, project=str(tmp_path), verbose=False)


class DiskModel(nn.Module):
    """A stand-in click model whose answer is the positive click disks (minus the negative ones)."""

    def __init__(self, meta: ModelMeta):
        super().__init__()
        self.meta = meta
        self.weight = nn.Parameter(torch.zeros(()))

    def forward(self, x: torch.Tensor, guide: torch.Tensor) -> torch.Tensor:
        return (guide[:, :1] - guide[:, 1:2] - 0.5) * 10 + self.weight


def test_the_batched_protocol_is_the_clicker_of_simulate():
    """noc_forward clicks on every object of an image at once; its IoUs are those of metrics.clicks.simulate run
    on each object alone with the same model through predict_clicks."""
    meta = ModelMeta.card(task="click", model="clicker", classes=["background", "object"], num_outputs=1,
                          in_chans=3, imgsz=64, max_size=0, mean=[0.5] * 3, std=[0.5] * 3,
                          extra={"click_radius": 3.0})
    model = DiskModel(meta)
    objects = np.zeros((40, 50), np.int32)
    objects[3:15, 4:30] = 1
    objects[20:36, 30:47] = 2
    objects[22:26, 5:9] = -1  # ignored
    image = np.random.default_rng(0).integers(0, 255, (40, 50, 3)).astype(np.int32)
    packed = torch.from_numpy(np.concatenate([image, objects[..., None]], -1)).permute(2, 0, 1)
    batched = noc_forward(max_clicks=8)(model, [packed]).numpy()
    pil = Image.fromarray(image.astype(np.uint8))
    for k in (1, 2):
        def segment(clicks, prev):
            return get_task("click").predict_clicks(model, pil, clicks, prev) > 0.5
        alone = simulate(segment, objects == k, max_clicks=8, valid=objects >= 0)
        np.testing.assert_allclose(batched[k - 1], alone)
    assert first_click(objects == 1) is not None


def test_instance_data_gives_one_object_per_instance():
    task = get_task("click")
    data = task.build_data(make_config({"task": "click", "data": "shapes:8", "model": "unet_basic", "imgsz": 48}))
    image, target = data.train[0]
    assert image.shape == (3, 48, 48) and target["mask"].shape == (48, 48) and target["clicks"].shape == (2, 48, 48)
    assert (target["mask"] == 1).any() and target["clicks"][0].any()  # an object, and a positive click on it
    packed, count = data.val[0]
    assert packed.shape[0] == 4 and packed.dtype == torch.int32 and int(count) == len(np.unique(packed[3])) - 1
    assert data.meta.value("layout", "") == "synthetic" and data.meta.crop == (48, 48)

"""The model remembers what it was trained on; inputs far outside it are said once per kind."""

import logging

import numpy as np
import torch

from cnnkit.cli.main import main
from cnnkit.data.inputs import InputWatch, describe_inputs
from cnnkit.meta import ModelMeta
from tests.cli.test_cli import trained  # noqa: F401 - the fixture
from tests.conftest import write_png


def grey_fluorescence(n: int = 8) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [(rng.random((64, 64)) * 40).astype(np.uint8) for _ in range(n)]  # dark, grey


def test_describe_and_watch(tmp_path, caplog):
    meta = ModelMeta.card(task="classify", model="m", classes=["a"], in_chans=1, mean=[0.5], std=[0.2],
                          inputs=describe_inputs(grey_fluorescence()))
    assert meta.inputs["colour_share"] == 0 and meta.inputs["side_range"] == [64, 64]
    watch = InputWatch(meta)
    slide = np.zeros((64, 64, 3), np.uint8)
    slide[..., 0], slide[..., 1], slide[..., 2] = 230, 180, 200  # a bright pink H&E slide
    with caplog.at_level(logging.WARNING, logger="cnnkit"):
        found = watch.check(slide, "slide.png")
        again = watch.check(slide, "slide2.png")
    assert len(found) == 2 and any("colour image" in f for f in found) and any("brightness" in f for f in found)
    assert len(again) == 2 and caplog.text.count("colour image") == 1  # said once
    assert watch.check(grey_fluorescence(1)[0]) == []  # like the training images: nothing to say
    huge = np.zeros((64 * 5, 64 * 5), np.uint8) + 20
    assert any("px" in f for f in InputWatch(meta).check(huge))
    deep = write_png(tmp_path / "deep.png", np.full((64, 64), 600, np.uint16))
    assert any("8-bit" in f for f in InputWatch(meta).check(deep))


def test_checkpoint_remembers_and_predict_warns(tmp_path, trained, caplog):  # noqa: F811
    meta = torch.load(trained, weights_only=True)["meta"]
    assert meta["inputs"]["colour_share"] > 0.5 and meta["pixel_max"] == 0.0
    write_png(tmp_path / "in" / "scan.png", np.full((32, 32), 3000, np.uint16))
    with caplog.at_level(logging.WARNING, logger="cnnkit"):
        assert main(["predict", "--weights", str(trained), str(tmp_path / "in"), "--out", str(tmp_path / "p")]) == 0
    assert "scan.png: a I;16" in caplog.text and "where the model trained on 8-bit images" in caplog.text
    assert "grey image, where the model trained on colour images" in caplog.text


def test_sixteen_bit_training_data_is_remembered_as_such(tmp_path):
    from cnnkit.config import make_config
    from cnnkit.tasks import get_task

    for c in ("a", "b"):
        for i in range(3):
            write_png(tmp_path / "d" / c / f"{i}.png", np.full((8, 8), 3000 + 100 * i, np.uint16))
    meta = get_task("classify").build_data(make_config({"task": "classify", "data": str(tmp_path / "d"), "imgsz": 8,
                                                  "val_split": 0.34})).meta
    assert meta.inputs["high_bit_share"] == 1 and meta.pixel_max == 4095
    watch = InputWatch(meta)
    assert any("8-bit image" in w for w in watch.check(write_png(tmp_path / "x.png", np.zeros((8, 8), np.uint8))))
    assert not watch.check(tmp_path / "d" / "a" / "0.png")


def test_dark_and_bright_are_two_kinds():
    meta = ModelMeta.card(task="classify", model="m", classes=["a"], in_chans=1, mean=[0.5], std=[0.2],
                          inputs=describe_inputs([np.full((32, 32), 120, np.uint8)] * 4))
    watch = InputWatch(meta)
    assert any("brightness 0.98" in w for w in watch.check(np.full((32, 32), 250, np.uint8)))
    assert any("brightness 0.00" in w for w in watch.check(np.zeros((32, 32), np.uint8)))
    assert watch.said >= {"dark", "bright"}

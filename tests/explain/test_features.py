"""``explain --features``: the stages' activations as pictures, the first filters, and their JSON record."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from cnnkit.errors import CnnkitError
from cnnkit.explain.features import filter_tiles, stage_activations, strongest, write_features
from cnnkit.meta import ModelMeta
from cnnkit.models.wrapper import build_image_model
from tests.explain.helpers import GREY, classifier, segmenter


def picture(side: int = 32, mode: str = "RGB") -> Image.Image:
    rng = np.random.default_rng(0)
    array = rng.integers(0, 255, (side + 8, side, 3), dtype=np.uint8)  # not square: resized like embed_images
    return Image.fromarray(array).convert(mode)


def resnet18(side: int = 64) -> torch.nn.Module:
    torch.manual_seed(0)
    meta = ModelMeta.card(task="classify", model="resnet18", classes=["a", "b"], in_chans=3, imgsz=side, **GREY)
    return build_image_model(meta).eval()


def test_basic_cnn_writes_every_stage_the_filters_and_the_record(tmp_path):
    model = classifier()  # basic_cnn tiny: 16 then 32 channels, 32 px
    files = write_features(model, picture(), tmp_path / "out", "img", max_channels=8)
    names = [f.name for f in files]
    assert names == ["img_stage1_features.0.png", "img_stage2_features.2.png", "img_stage3_features.3.png",
                     "img_filters.png", "features_img.json"]
    assert all(f.is_file() for f in files)
    record = json.loads(files[-1].read_text())
    assert record["input"] == [3, 32, 32] and record["model"] == "basic_cnn"
    stages = record["stages"]
    assert [s["shape"] for s in stages] == [[16, 32, 32], [32, 16, 16], [32, 8, 8]]
    assert [s["receptive_field"] for s in stages] == [3, 8, 10] and not any(s["clipped"] for s in stages)
    assert [s["stride"] for s in stages] == [1, 2, 4]
    assert all(len(s["channels"]) == 8 for s in stages)
    assert record["filters"] == {"layer": "features.0.0", "shape": [16, 3, 3, 3], "tiles": 16,
                                 "picture": "img_filters.png"}
    with Image.open(files[0]) as im:
        assert im.mode in ("RGB", "RGBA") and im.width >= 8 * 48 // 3  # 8 tiles of at least 48 px, about square


def test_resnet18_stages_and_their_fields(tmp_path):
    files = write_features(resnet18(), picture(48), tmp_path, "r", max_channels=4)
    stages = json.loads(files[-1].read_text())["stages"]
    assert [s["name"] for s in stages] == ["relu", "layer1", "layer2", "layer3", "layer4"]
    assert [s["shape"][1] for s in stages] == [32, 16, 8, 4, 2]
    assert stages[0]["receptive_field"] == 7 and stages[1]["receptive_field"] == 43
    assert stages[-1]["clipped"] and stages[-1]["receptive_field"] <= 64  # 435 px cut by a 64 px input
    assert len(files) == 5 + 2


def test_activations_are_the_stages_in_order_and_leave_no_hooks():
    model = classifier()
    found = stage_activations(model, picture())
    assert [name for name, _ in found] == ["features.0", "features.2", "features.3"]
    assert [a.shape for _, a in found] == [(16, 32, 32), (32, 16, 16), (32, 8, 8)]
    assert all(a.dtype == np.float32 for _, a in found)
    assert not any(m._forward_hooks for m in model.modules())
    with torch.no_grad():  # the activations are the network's own: the last stage is what the head pools
        x = torch.from_numpy(np.array(picture().resize((32, 32), Image.BILINEAR))).permute(2, 0, 1)[None]
        expected = model.net.features(model.normalize(x))[0].numpy()
    np.testing.assert_allclose(found[-1][1], expected, atol=1e-5)


def test_strongest_channels_first():
    values = np.zeros((4, 2, 2), np.float32)
    values[2] += 3
    values[0] += 1
    values[3] -= 1
    assert strongest(values, 3) == [2, 0, 1]


def test_filters_grey_and_multichannel():
    tiles, columns = filter_tiles(np.random.default_rng(0).normal(size=(10, 1, 3, 3)))
    assert len(tiles) == 10 and tiles[0].shape == (3, 3) and columns == 0
    tiles, columns = filter_tiles(np.random.default_rng(0).normal(size=(10, 2, 5, 5)))
    assert len(tiles) == 20 and columns == 2  # a row per filter, a tile per input channel
    tiles, _ = filter_tiles(np.random.default_rng(0).normal(size=(100, 3, 3, 3)))
    assert len(tiles) == 64 and tiles[0].shape == (3, 3, 3) and 0 <= tiles[0].min() <= tiles[0].max() <= 1


def test_grey_model_and_grey_colours(tmp_path):
    torch.manual_seed(0)
    meta = ModelMeta.card(task="classify", model="basic_cnn", classes=["a", "b"], in_chans=1, imgsz=28,
                          model_args={"preset": "tiny", "input_size": 28}, mean=[0.5], std=[0.25])
    model = build_image_model(meta).eval()
    files = write_features(model, picture(28, "L"), tmp_path, "g", cmap="gray")
    record = json.loads(files[-1].read_text())
    assert record["input"] == [1, 28, 28] and record["filters"]["tiles"] == 16
    with pytest.raises(CnnkitError, match="cmap"):
        write_features(model, picture(28, "L"), tmp_path, "g", cmap="jet")


def test_segmentation_encoder_maps_are_stages(tmp_path):
    files = write_features(segmenter(), picture(), tmp_path, "sub/s")  # a stem with a folder
    stages = json.loads(files[-1].read_text())["stages"]
    assert [s["name"] for s in stages] == [f"encoder.pool:{i}" for i in range(5)]
    assert [s["receptive_field"] for s in stages[:2]] == [4, 14]
    assert (tmp_path / "sub" / "s_stage1_encoder.pool-0.png").is_file()
    assert files[-1] == tmp_path / "sub" / "features_s.json"

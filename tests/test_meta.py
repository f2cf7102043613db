"""The model card: typed, versioned, torch-free; checkpoints written before it was typed still load."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import cnnkit
from cnnkit.api import export
from cnnkit.errors import CnnkitError
from cnnkit.meta import SCHEMA, ModelMeta

FIXTURES = Path(__file__).parent / "fixtures"  # written by cnnkit 0.1.0 at commit 93e18cf (schema 1: a dict)


def test_a_checkpoint_from_before_the_typed_card_loads_and_predicts_the_same():
    model = cnnkit.load(FIXTURES / "schema1_classify.pt", device="cpu")
    assert model.checkpoint["meta"].schema == 1 and model.meta.schema == SCHEMA  # read as written, kept as today's
    assert isinstance(model.meta, ModelMeta) and model.meta.task == "classify"
    assert model.classes == ["circle", "square"] and model.meta.in_chans == 1 and model.meta.input_side == 16
    x = torch.arange(2 * 16 * 16, dtype=torch.float32).reshape(2, 1, 16, 16) / 512
    expected = [[-0.024634551256895065, 0.013421524316072464], [0.02695881575345993, 0.09520220756530762]]
    torch.testing.assert_close(model(x), torch.tensor(expected))  # logits printed by the old release
    assert model.predict(np.zeros((16, 16), np.uint8))[0]["class"] in model.classes


def test_a_segment_checkpoint_from_before_keeps_its_task_values(tmp_path):
    model = cnnkit.load(FIXTURES / "schema1_segment.pt", device="cpu")
    meta = model.meta
    assert meta.extra["values"] == [0, 1, 2] and meta.extra["ignore_index"] == 255 and meta["binary"] is False
    assert meta.colours[1] == (255, 0, 0) and meta.crop == (32, 32) and meta["num_outputs"] == 3
    pred = model.predict(np.zeros((40, 50, 3), np.uint8))[0]
    assert pred["mask"].shape == (40, 50)
    path, _ = export(FIXTURES / "schema1_segment.pt", out=tmp_path / "s.onnx")
    assert cnnkit.load(path).meta.schema == SCHEMA  # re-exported: the card in today's schema


def test_the_card_round_trips_through_json_and_reads_as_a_mapping():
    meta = ModelMeta.from_dict({"task": "instance", "model": "maskrcnn_resnet18", "classes": ["cell"], "in_chans": 3,
                                "mean": [0.5] * 3, "std": [0.2] * 3, "crop": [96, 96], "detections": 300})
    again = ModelMeta.from_dict(json.loads(json.dumps(meta.to_dict())))
    assert again == meta.replace(schema=SCHEMA) and again.extra == {"detections": 300} and again.num_classes == 1
    assert meta["detections"] == 300 and meta.get("crop") == [96, 96] and "detections" in meta
    assert dict(meta)["classes"] == ["cell"] and meta.input_side == 96


def test_a_card_without_what_rebuilds_the_model_is_refused_by_name():
    with pytest.raises(CnnkitError, match="lacks model, in_chans"):
        ModelMeta.from_dict({"task": "classify", "classes": ["a"], "mean": [0.5], "std": [0.5]}, origin="x.pt")


def test_the_card_and_the_registry_load_without_torch():
    code = ("import sys, cnnkit.meta, cnnkit.tasks, cnnkit.options, cnnkit.predictor, cnnkit.export.runtime; "
            "from cnnkit.tasks import get_view; [get_view(t) for t in cnnkit.tasks.task_names()]; "
            "import cnnkit.cli.main; cnnkit.cli.main.build_parser(); print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


@pytest.mark.parametrize(("change", "match"), [({"classes": "abcd"}, "classes must be a non-empty list"),
                                               ({"classes": []}, "classes must be a non-empty list"),
                                               ({"mean": [0.5]}, "mean holds 1 values for 3 channels"),
                                               ({"in_chans": "three"}, "malformed"),
                                               ({"schema": 99}, "newer cnnkit")])
def test_a_malformed_or_newer_card_is_one_line(change, match):
    card = {"task": "classify", "model": "basic_cnn", "classes": ["a", "b"], "in_chans": 3, "mean": [0.5] * 3,
            "std": [0.2] * 3}
    with pytest.raises(CnnkitError, match=match):
        ModelMeta.from_dict({**card, **change}, origin="x.pt")

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
    assert meta.extra["values"] == [0, 1, 2] and meta.extra["ignore_index"] == 255 and meta.value("binary", 1) is False
    assert meta.colours[1] == (255, 0, 0) and meta.crop == (32, 32) and meta.num_outputs == 3
    pred = model.predict(np.zeros((40, 50, 3), np.uint8))[0]
    assert pred["mask"].shape == (40, 50)
    path, _ = export(FIXTURES / "schema1_segment.pt", out=tmp_path / "s.onnx")
    assert cnnkit.load(path).meta.schema == SCHEMA  # re-exported: the card in today's schema


def test_the_card_round_trips_through_json_and_reads_as_a_deprecated_mapping():
    meta = ModelMeta.from_dict({"task": "instance", "model": "maskrcnn_resnet18", "classes": ["cell"], "in_chans": 3,
                                "mean": [0.5] * 3, "std": [0.2] * 3, "crop": [96, 96], "detections": 300})
    again = ModelMeta.from_dict(json.loads(json.dumps(meta.to_dict())))
    assert again == meta.replace(schema=SCHEMA) and again.extra == {"detections": 300} and again.num_classes == 1
    assert meta.value("detections", 0) == 300 and meta.input_side == 96
    # users' code written against the dict the card replaced
    with pytest.deprecated_call(match=r"deprecated; read meta\.value\('detections', default\)"):
        assert meta["detections"] == 300 and meta.get("crop") == [96, 96] and "detections" in meta
        assert dict(meta)["classes"] == ["cell"] and meta["num_outputs"] == meta.num_outputs == 1


def test_num_outputs_has_one_meaning():
    """The head's outputs: one per class unless the task says otherwise (a binary segmenter has 1); the mapping
    said num_classes where the attribute said 0."""
    card = ModelMeta.card(task="segment", model="unet", classes=["bg", "a", "b"], in_chans=1, mean=[0.5], std=[0.2])
    assert card.num_outputs == 3 and ModelMeta.from_dict(card.to_dict()).num_outputs == 3
    binary = card.replace(classes=("bg", "fg"), num_outputs=1)
    assert binary.num_outputs == 1 and ModelMeta.from_dict(binary.to_dict()) == binary
    schema1 = {"task": "classify", "model": "m", "classes": ["a", "b"], "in_chans": 1, "mean": [0.5], "std": [0.2]}
    assert ModelMeta.from_dict(schema1).num_outputs == 2


def test_task_values_read_typed_and_the_card_is_made_with_fields_only():
    card = ModelMeta.card(task="instance", model="m", classes=["cell"], in_chans=1, mean=[0.5], std=[0.2],
                          extra={"detections": 100, "coco_files": None})
    assert card.value("detections", 300) == 100 and card.value("coco_files", ["x"]) == ["x"]
    assert card.value("missing", 2.5) == 2.5 and card.value("detections", 1.0) == 100  # an int reads as a float
    with pytest.raises(CnnkitError, match="detections is 100, not a str"):
        card.value("detections", "")
    with pytest.raises(TypeError, match="no field detections; a task's own values go in extra"):
        ModelMeta.card(task="instance", model="m", classes=["cell"], in_chans=1, mean=[0.5], std=[0.2],
                       detections=100)


def test_cnnkit_reads_the_card_by_attribute_only():
    """The mapping interface is for users' code (deprecated): no cnnkit module reads the card as a dict."""
    import re

    src = Path(cnnkit.__file__).parent
    pattern = re.compile(r"""meta\[["'][a-z_]+["']\]|meta\.get\(|\*\*meta\b|\bdict\(meta\)""")
    found = [f"{p.relative_to(src)}:{n}" for p in sorted(src.rglob("*.py")) if p.name != "meta.py"
             for n, line in enumerate(p.read_text().splitlines(), 1) if pattern.search(line)]
    assert found == []


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

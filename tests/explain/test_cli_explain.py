"""`cnnkit explain` end to end: files, the CSV, and bad input in one line with exit code 2."""

import csv
import importlib.util

import numpy as np
import pytest
from PIL import Image

from cnnkit.cli.main import main
from tests.export.helpers import write_checkpoint


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    return write_checkpoint(tmp_path_factory.mktemp("ckpt"), "classify")


@pytest.fixture
def images(tmp_path):
    rng = np.random.default_rng(0)
    for name in ("a/one.png", "b/one.png"):
        (tmp_path / "in" / name).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (36, 30, 3), dtype=np.uint8)).save(tmp_path / "in" / name)
    return tmp_path / "in"


def test_explain_writes_overlays_maps_and_a_csv(weights, images, tmp_path, capsys):
    out = tmp_path / "maps"
    assert main(["explain", "--weights", str(weights), str(images), "--topk", "2", "--out", str(out)]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert len(printed) == 3 and "(gradcam at blocks.2)" in printed[0] and str(out) in printed[-1]
    rows = list(csv.DictReader((out / "explanations.csv").open()))
    assert [r["target"] for r in rows] == ["0", "1", "0", "1"]
    assert {r["method"] for r in rows} == {"gradcam"} and {r["layer"] for r in rows} == {"blocks.2"}
    assert rows[0]["overlay"].startswith("a/one_0_") and rows[2]["map"].startswith("b/one_0_")
    for row in rows:
        assert Image.open(out / row["overlay"]).size == (30, 36)
        assert np.load(out / row["map"]).shape == (36, 30)


def test_default_folder_is_numbered_and_options_pass(weights, images, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    one = str(images / "a" / "one.png")
    assert main(["explain", "--weights", str(weights), one, "--method", "ig", "--target", "star", "--tta"]) == 0
    assert main(["explain", "--weights", str(weights), one, "--method", "ig", "--target", "0"]) == 0
    assert (tmp_path / "runs" / "explain" / "explanations.csv").is_file()
    rows = list(csv.DictReader((tmp_path / "runs" / "explain2" / "explanations.csv").open()))
    assert len(rows) == 1 and rows[0]["label"].startswith("circle (") and rows[0]["layer"] == ""


@pytest.mark.parametrize("case", ["onnx", "target", "empty", "layer", "reference"])
def test_bad_input_is_one_line_and_exit_2(weights, images, tmp_path, capsys, case):
    args = ["explain", "--weights", str(weights), str(images), "--out", str(tmp_path / "o")]
    expected = {"onnx": "explanations need the PyTorch checkpoint (best.pt)", "target": "--target cat: not a class",
                "empty": "no images found", "layer": "did you mean", "reference": "only a recognition model"}[case]
    if case == "onnx":
        (tmp_path / "m.onnx").write_bytes(b"not read")
        args[2] = str(tmp_path / "m.onnx")
    elif case == "empty":
        (tmp_path / "none").mkdir()
        args[3] = str(tmp_path / "none")
    else:
        args += {"target": ["--target", "cat"], "layer": ["--layer", "blocks.7"],
                 "reference": ["--reference", str(images / "a" / "one.png")]}[case]
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and expected in err[0], err
    assert not (tmp_path / "o").exists()  # nothing half-made


@pytest.mark.skipif(importlib.util.find_spec("cnnkit.explain.features") is None,
                    reason="cnnkit.explain.features not written yet")
def test_features_are_written_too(weights, images, tmp_path):
    out = tmp_path / "f"
    assert main(["explain", "--weights", str(weights), str(images / "a"), "--features", "--out", str(out)]) == 0
    assert len(list(out.rglob("*"))) > 3

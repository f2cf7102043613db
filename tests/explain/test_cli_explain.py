"""`cnnkit explain` end to end: files, the CSV, and bad input in one line with exit code 2."""

import csv
import importlib.util

import numpy as np
import pytest
from PIL import Image

from cnnkit.cli.explain import FIELDS
from cnnkit.cli.main import main
from cnnkit.errors import CnnkitError
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
    printed = [line for line in capsys.readouterr().out.splitlines() if not line.startswith("note: ")]
    # fastnet_small at 32 px: blocks.2's map is 3x3, blocks.1's 7x7 (the last stage of at least MIN_CAM_SIDE)
    assert len(printed) == 3 and "(gradcam at blocks.1)" in printed[0] and str(out) in printed[-1]
    rows = list(csv.DictReader((out / "explanations.csv").open()))
    assert list(rows[0]) == FIELDS and [r["rank"] for r in rows] == ["0", "1", "0", "1"]
    assert {r["method"] for r in rows} == {"gradcam"} and {r["layer"] for r in rows} == {"blocks.1"}
    assert rows[0]["overlay"].startswith("a/one_0_") and rows[2]["map"].startswith("b/one_0_")
    for row in rows:
        assert Image.open(out / row["overlay"]).size == (30, 36)
        assert np.load(out / row["map"]).shape == (36, 30)


def test_default_folder_is_numbered_and_options_pass(weights, images, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    one = str(images / "a" / "one.png")
    assert main(["explain", "--weights", str(weights), one, "--method", "ig", "--target", "star"]) == 0
    # --tta is classify's, but an explanation runs the image once: refused, not silently dropped
    assert main(["explain", "--weights", str(weights), one, "--tta"]) == 2
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


def test_a_layer_of_1x1_is_refused(weights, images, tmp_path, capsys):
    args = ["explain", "--weights", str(weights), str(images), "--layer", "pool", "--out", str(tmp_path / "o")]
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--layer pool: its map is 1x1 at this input (32x32 px)" in err[0], err
    assert "such as blocks.1" in err[0]


def test_a_flat_map_is_told(weights, images, tmp_path, capsys, monkeypatch):
    from cnnkit.explain import methods

    monkeypatch.setattr(methods, "compute_maps", lambda module, targets, *a: np.zeros(
        (len(targets.labels), *targets.inputs.shape[-2:]), np.float32))
    assert main(["explain", "--weights", str(weights), str(images / "a"), "--target", "star", "--out",
                 str(tmp_path / "o")]) == 0
    notes = [line for line in capsys.readouterr().out.splitlines() if line.startswith("note: ")]
    assert len(notes) == 1 and notes[0].startswith("note: star (") and "the map is flat: gradcam found no evidence " \
        "for it at blocks.1 (Grad-CAM keeps only positive evidence); try --method occlusion" in notes[0]


def test_unreadable_images_stop_or_are_skipped_and_the_csv_lists_what_was_written(weights, images, tmp_path, capsys,
                                                                                  caplog):
    (images / "a" / "two.png").write_bytes(b"not an image")  # after a/one.png, before b/one.png
    out = tmp_path / "stopped"
    assert main(["explain", "--weights", str(weights), str(images), "--out", str(out)]) == 2
    assert "two.png" in capsys.readouterr().err
    rows = list(csv.DictReader((out / "explanations.csv").open()))
    assert [r["image"].endswith("one.png") for r in rows] == [True] and (out / rows[0]["overlay"]).is_file()
    out = tmp_path / "skipped"
    assert main(["explain", "--weights", str(weights), str(images), "--out", str(out), "--skip-bad"]) == 0
    assert "two.png" in caplog.text and "; skipped" in caplog.text and "2 images (1 skipped)" in capsys.readouterr().out
    assert len(list(csv.DictReader((out / "explanations.csv").open()))) == 2


def test_topk_is_refused_on_a_model_without_it(images, tmp_path, capsys):
    segment = write_checkpoint(tmp_path, "segment")
    assert main(["explain", "--weights", str(segment), str(images), "--topk", "3", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--topk: an option of classify, not segment; drop --topk" in err[0], err


@pytest.mark.skipif(importlib.util.find_spec("cnnkit.explain.features") is None,
                    reason="cnnkit.explain.features not written yet")
def test_features_alone_say_only_what_was_written(weights, images, tmp_path, capsys, monkeypatch):
    from cnnkit.explain import core

    def nothing_to_explain(*args, **kwargs):  # as a pretraining checkpoint answers
        raise CnnkitError("selfsup: a pretraining checkpoint has no classes to explain")

    monkeypatch.setattr(core, "explain_images", nothing_to_explain)
    out = tmp_path / "f"
    assert main(["explain", "--weights", str(weights), str(images / "a"), "--features", "--out", str(out)]) == 0
    last = capsys.readouterr().out.splitlines()[-1]
    assert last.endswith(f"; features in {out}") and "maps" not in last, last
    assert not (out / "explanations.csv").exists() and any(out.iterdir())

"""Export for every task: metadata in the file, parity with PyTorch (ONNX and TorchScript), the
torch-free ONNX path for predict, and the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from PIL import Image

from cnnkit.api import export as export_model
from cnnkit.api import load
from cnnkit.cli.main import main
from cnnkit.data.synthetic import make_scene
from cnnkit.errors import CnnkitError
from cnnkit.export.exporter import build_graph
from cnnkit.export.verify import exported_runner, parity, sample_indices
from tests.export.helpers import write_checkpoint

TASKS = ["classify", "segment", "instance", "detect"]
FLOAT_TOL = 1e-3  # largest difference accepted in float outputs (probabilities, boxes in pixels, masks)


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("ckpt")
    return {task: write_checkpoint(folder, task) for task in TASKS}


def scenes(n: int = 3) -> list[Image.Image]:
    return [Image.fromarray(make_scene(i, seed=3, size=72 + 12 * i).image) for i in range(n)]


def assert_parity(differences: dict[str, float]) -> None:
    for key, value in differences.items():
        assert not key.endswith("count_diff"), differences
        assert value <= (FLOAT_TOL if key.endswith("max_abs_diff") else 0.0), differences


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
@pytest.mark.parametrize("task", TASKS)
def test_export_matches_pytorch(checkpoints, tmp_path, task, fmt):
    path, _ = export_model(checkpoints[task], fmt, dynamic=True, out=tmp_path / f"m.{fmt}")
    graph = build_graph(load(checkpoints[task], device="cpu"), half=False)
    shape = [1 if task in ("instance", "detect") else "batch", 3,
             *(["height", "width"] if task != "classify" else [32, 32])]
    side = 32 if task == "classify" else 64
    assert_parity(parity(graph, exported_runner(str(path), fmt), shape, 3, side, samples=2))


@pytest.mark.parametrize("task", TASKS)
def test_onnx_metadata_travels_in_the_file(checkpoints, tmp_path, task):
    path, _ = export_model(checkpoints[task], "onnx", out=tmp_path / "m.onnx")
    props = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    assert props["task"] == task and json.loads(props["classes"])[-1] == "star"
    assert len(json.loads(props["colours"])) == len(json.loads(props["classes"]))
    assert props["cnnkit_version"] and json.loads(props["input_size"])
    model = load(path)
    assert model.meta.task == task and model.export["input"]["dtype"] == "uint8"


@pytest.mark.parametrize("task", TASKS)
def test_onnx_predictions_equal_pytorch_predictions(checkpoints, tmp_path, task):
    path, _ = export_model(checkpoints[task], "onnx", dynamic=True, out=tmp_path / "m.onnx")
    options = {"score_thresh": 0.0} if task in ("instance", "detect") else {}
    torch_preds = load(checkpoints[task], device="cpu").predict(scenes(), **options)
    onnx_preds = load(path).predict(scenes(), **options)
    for a, b in zip(torch_preds, onnx_preds):
        if task == "classify":
            assert a["index"] == b["index"] and abs(a["score"] - b["score"]) < 1e-4
        elif task == "segment":
            assert np.array_equal(a["mask"], b["mask"]) and a["areas"] == b["areas"]
        else:
            assert len(a["instances"]) == len(b["instances"]) > 0
            boxes_a = np.array([i["box"] for i in a["instances"]])
            boxes_b = np.array([i["box"] for i in b["instances"]])
            assert np.abs(boxes_a - boxes_b).max() < 0.05
            assert ("rle" in b["instances"][0]) == (task == "instance")
            if task == "instance":  # masks pasted in numpy, as torchvision pastes them
                assert np.mean([x["rle"] == y["rle"] for x, y in zip(a["instances"], b["instances"])]) > 0.9


def test_half_precision_classifier(checkpoints, tmp_path):
    path, _ = export_model(checkpoints["classify"], "onnx", half=True, out=tmp_path / "half.onnx")
    graph = build_graph(load(checkpoints["classify"], device="cpu"), half=False)
    differences = parity(graph, exported_runner(str(path), "onnx"), [1, 3, 32, 32], 3, 32, samples=2)
    assert differences["probs_max_abs_diff"] < 2e-2
    assert load(path).export["half"] is True


def test_fixed_size_segmenter_resizes_images(checkpoints, tmp_path):
    path, _ = export_model(checkpoints["segment"], "onnx", imgsz=48, out=tmp_path / "fixed.onnx")
    model = load(path)
    assert model.input_shape == [1, 3, 48, 48]
    prediction = model.predict(scenes(1))[0]
    assert prediction["mask"].shape == (72, 72) and prediction["size"] == [72, 72]


def test_onnx_predict_does_not_import_torch(checkpoints, tmp_path):
    path, _ = export_model(checkpoints["segment"], "onnx", dynamic=True, out=tmp_path / "m.onnx")
    scenes(1)[0].save(tmp_path / "a.png")
    code = ("import sys; from cnnkit.cli.main import main; "
            f"rc = main(['predict', '--weights', r'{path}', r'{tmp_path / 'a.png'}', '--out', r'{tmp_path / 'out'}']); "
            "assert rc == 0; assert 'torch' not in sys.modules, 'torch was imported'")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "out" / "a_mask.png").is_file()


@pytest.mark.parametrize("fmt, out, written", [("onnx", "exp1", "exp1.onnx"), ("onnx", "exp1.pt", "exp1.pt.onnx"),
                                                ("torchscript", "exp1", "exp1.torchscript"),
                                                ("torchscript", "exp1.pt", "exp1.pt")])
def test_export_out_without_the_formats_suffix_gets_it(checkpoints, tmp_path, capsys, caplog, fmt, out, written):
    """Regression: --out exp1 wrote ONNX named exp1, and the printed next command failed on it (read as
    a checkpoint: UnpicklingError). Whatever is written must load by the name printed."""
    with caplog.at_level("INFO", logger="cnnkit"):
        assert main(["export", "--weights", str(checkpoints["classify"]), "--format", fmt,
                     "--out", str(tmp_path / out)]) == 0
    assert (tmp_path / written).is_file() and sorted(p.name for p in tmp_path.iterdir()) == [written]
    assert f"--weights {tmp_path / written} " in capsys.readouterr().out
    assert (written in caplog.text) == (written != out)
    assert load(tmp_path / written).meta.task == "classify"


def test_cli_export_verify_and_val_on_onnx(checkpoints, tmp_path, shapes_folder, capsys):
    out = tmp_path / "cls.onnx"
    assert main(["export", "--weights", str(checkpoints["classify"]), "--dynamic", "--verify", "--data",
                 str(shapes_folder), "--limit", "8", "--no-compile", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "probs_max_abs_diff" in text and "same prediction on 8 images: 1.0000" in text
    report = json.loads((tmp_path / "cls.onnx.verify.json").read_text())
    assert report["latency_batch1"]["exported_ms"] > 0 and "latency_batch8" in report
    assert main(["val", "--weights", str(out), "--data", str(shapes_folder), "--out", str(tmp_path / "val")]) == 0
    assert "top1=" in capsys.readouterr().out and (tmp_path / "val" / "metrics.json").is_file()


def test_bad_onnx_files_give_one_line_errors(tmp_path, capsys):
    assert main(["predict", "--weights", str(tmp_path / "missing.onnx"), str(tmp_path)]) == 2
    assert "no such file" in capsys.readouterr().err
    plain = tmp_path / "plain.onnx"
    graph = onnx.helper.make_graph([onnx.helper.make_node("Identity", ["x"], ["y"])], "g",
                                   [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1])],
                                   [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1])])
    onnx.save(onnx.helper.make_model(graph), plain)
    Image.new("RGB", (8, 8)).save(tmp_path / "x.png")
    assert main(["predict", "--weights", str(plain), str(tmp_path / "x.png")]) == 2
    err = capsys.readouterr().err
    assert "no cnnkit metadata" in err and len(err.strip().splitlines()) == 1


def test_verify_samples_across_the_split():
    """Regression: --verify scored the first 200 images in folder order, all of one class."""
    picked = sample_indices(1000, 200)
    assert len(picked) == len(set(picked)) == 200 and picked == sorted(picked)
    assert picked[0] < 50 and picked[-1] > 950  # from all over, not the first 200
    assert sum(i < 500 for i in picked) in range(70, 131)  # about half in each half
    assert picked == sample_indices(1000, 200)  # the same sample every time
    assert sample_indices(10, 0) == sample_indices(10, 50) == list(range(10))


@pytest.mark.parametrize("task", ["classify", "segment"])
def test_one_load_for_checkpoints_onnx_and_torchscript(checkpoints, tmp_path, task):
    """cnnkit.load opens the three kinds alike; each keeps the Predictor face and predicts the same."""
    from cnnkit.predictor import Predictor

    loaded = {"pytorch": load(checkpoints[task], device="cpu")}
    for fmt in ("onnx", "torchscript"):
        path, _ = export_model(checkpoints[task], fmt, dynamic=True, out=tmp_path / f"m.{fmt}")
        loaded[fmt] = load(path)
    images = scenes(2)
    reference = loaded["pytorch"].predict(images)
    for runtime, model in loaded.items():
        assert isinstance(model, Predictor) and model.runtime == runtime and model.meta.task == task
        for a, b in zip(reference, model.predict(images)):
            assert a.get("class") == b.get("class") and a.get("areas") == b.get("areas")
    if task == "segment":
        assert "tile" in loaded["pytorch"].options() and "tile" not in loaded["torchscript"].options()
        with pytest.raises(CnnkitError, match="tile: not available for segment on torchscript"):
            loaded["torchscript"].predict(images, tile=64)


def test_a_torchscript_detector_loads_in_a_fresh_process_and_validates(checkpoints, tmp_path, capsys):
    """Regression: torch.jit.load ran before torchvision registered its ops (torchvision::nms), so an
    instance or detect TorchScript file loaded only where torchvision happened to be imported already."""
    path, _ = export_model(checkpoints["detect"], "torchscript", out=tmp_path / "d.torchscript")
    code = (f"import cnnkit, numpy as np; m = cnnkit.load(r'{path}'); "
            "print(m.runtime, len(m.predict(np.zeros((64, 64, 3), np.uint8))))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and result.stdout.split() == ["torchscript", "1"], result.stderr
    assert "deprecated" not in result.stderr  # torch's own FutureWarning is not the user's
    classifier, _ = export_model(checkpoints["classify"], "torchscript", out=tmp_path / "c.torchscript")
    assert main(["val", "--weights", str(classifier), "--data", "shapes:8", "--out", str(tmp_path / "v")]) == 0
    assert "(torchscript)" in capsys.readouterr().out


@pytest.mark.slow
def test_cpu_export_verify_is_free_of_cuda_chatter(checkpoints, tmp_path):
    """Regression: torch.compile's toolchain probe printed 'No CUDA runtime is found, using CUDA_HOME=...' on
    every CPU-only export --verify."""
    proc = subprocess.run([sys.executable, "-m", "cnnkit", "export", "--weights", str(checkpoints["classify"]),
                           "--verify", "--limit", "4", "--out", str(tmp_path / "m.onnx")],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "CUDA_HOME" not in proc.stderr + proc.stdout and "compile" in proc.stdout

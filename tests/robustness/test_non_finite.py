"""A diverged run must never leave a best.pt that predicts NaN, and no output file may hold NaN."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from cnnkit.cli.main import main
from cnnkit.files import atomic_write_csv, json_bytes
from cnnkit.models.wrapper import build_image_model


def overflowing(state: dict) -> dict:
    """Finite weights whose outputs overflow to infinity (and NaN after softmax): what a diverged epoch leaves."""
    model = {k: v * 1e8 if k.endswith("weight") and v.is_floating_point() else v for k, v in state["model"].items()}
    return {**state, "model": model}


def test_diverged_run_keeps_no_best(tmp_path, caplog):
    code = main(["train", "classify", "--data", "shapes:24", "--model", "basic_cnn", "--imgsz", "32", "--epochs", "2",
                 "--lr", "1e12", "--warmup-epochs", "0", "--project", str(tmp_path), "--name", "nan"])
    assert code == 2
    assert not (tmp_path / "classify" / "nan" / "best.pt").exists()
    assert "not kept as best.pt" in caplog.text
    rows = (tmp_path / "classify" / "nan" / "metrics.csv").read_text()
    assert "nan" not in rows.lower() and "inf" not in rows.lower()
    import csv

    first = next(csv.DictReader(rows.splitlines()))
    assert first["val_loss"] == first["top1"] == ""  # top-1 0.25 was argmax of NaN: no figure at all


def test_classifier_with_non_finite_outputs_refuses_to_predict(trained, tmp_path, capsys):
    state = torch.load(trained["ckpt"], weights_only=True)
    torch.save(overflowing(state), tmp_path / "big.pt")
    image = next(Path(trained["data"]).rglob("*.png"))
    assert main(["predict", "--weights", str(tmp_path / "big.pt"), str(image), "--out", str(tmp_path / "p")]) == 2
    assert "NaN or infinite" in capsys.readouterr().err
    assert not (tmp_path / "p" / "predictions.json").exists()


def test_segmenter_with_non_finite_outputs_refuses_to_predict(tmp_path, capsys):
    """NaN logits took class 0 in argmax: 'background 100%', exit 0, nothing marked."""
    meta = {"task": "segment", "model": "unet_basic", "classes": ["background", "cell"], "in_chans": 3,
            "mean": [0.5] * 3, "std": [0.25] * 3, "imgsz": 32, "crop": [32, 32], "num_classes": 2,
            "extra": {"values": [0, 1], "ignore_index": 255}}
    module = build_image_model(meta)
    state = {"task": "segment", "meta": module.meta.to_dict(), "model": module.state_dict(), "epoch": 1,
             "config": {}}
    torch.save(overflowing(state), tmp_path / "seg.pt")
    from PIL import Image

    Image.fromarray(np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(tmp_path / "a.png")
    assert main(["predict", "--weights", str(tmp_path / "seg.pt"), str(tmp_path / "a.png"),
                 "--out", str(tmp_path / "p")]) == 2
    assert "NaN or infinite" in capsys.readouterr().err


def test_output_files_hold_no_nan(tmp_path):
    data = {"score": float("nan"), "probs": [np.float32("inf"), 0.5], "nested": {"x": -float("inf")}}
    assert json.loads(json_bytes(data)) == {"score": None, "probs": [None, 0.5], "nested": {"x": None}}
    atomic_write_csv(tmp_path / "a.csv", [{"a": float("nan"), "b": 1.5}])
    assert (tmp_path / "a.csv").read_text().splitlines() == ["a,b", ",1.5"]


@pytest.mark.parametrize("monitor,rows,best", [
    ("top1", [(0.5, 0.99), (0.5, 0.02)], 2),          # a tie on top-1 keeps the lower validation loss
    ("top1", [(0.5, 0.02), (0.5, 0.99)], 1),
    ("top1", [(0.75, float("nan")), (0.5, 0.3)], 2),  # a NaN epoch is never best, however high its top-1
    ("val_loss", [(0.5, 0.3), (0.5, 0.3)], 1),
])
def test_best_epoch_choice(monitor, rows, best):
    from types import SimpleNamespace

    from cnnkit.config import make_config
    from cnnkit.engine.trainer import Parts, end_epoch

    model = build_image_model({"task": "classify", "model": "basic_cnn", "classes": ["a", "b"], "num_classes": 2,
                               "in_chans": 1, "mean": [0.5], "std": [0.25]})
    parts = Parts(model=model, optimizer=None, scheduler=None, scaler=None, ema=None)  # type: ignore[arg-type]
    cfg = make_config({"task": "classify", "monitor": monitor})
    metrics = SimpleNamespace(save=lambda folder: None, table=lambda: "")
    for epoch, (top1, loss) in enumerate(rows, start=1):
        end_epoch(parts, cfg, {"epoch": epoch, "top1": top1, "val_loss": loss, "time_s": 1.0}, Path("."), False,
                  metrics)
    assert parts.best_metrics["epoch"] == best


def test_a_diverged_model_is_not_exported_and_exported_nan_is_refused(trained, tmp_path, capsys):
    """An exported diverged classifier answered 'circle (nan)' with exit 0, and val scored it."""
    state = torch.load(trained["ckpt"], weights_only=True)
    torch.save(overflowing(state), tmp_path / "big.pt")
    assert main(["export", "--weights", str(tmp_path / "big.pt"), "--out", str(tmp_path / "big.onnx")]) == 2
    assert "NaN or infinite" in capsys.readouterr().err and not (tmp_path / "big.onnx").exists()
    from cnnkit.export.runtime import finite_outputs

    with pytest.raises(Exception, match="NaN or infinite"):
        finite_outputs([np.array([[np.nan, 0.5]], np.float32)], tmp_path / "x.onnx")
    assert finite_outputs([np.array([[1, 2]])], tmp_path / "x.onnx")[0].tolist() == [[1, 2]]


def test_a_diverged_model_gives_no_embeddings(trained, tmp_path, capsys):
    """Regression: cnnkit embed of a diverged model wrote embeddings.csv full of inf, exit 0."""
    state = torch.load(trained["ckpt"], weights_only=True)
    torch.save(overflowing(overflowing(overflowing(state))), tmp_path / "big.pt")  # inf within the two-layer trunk
    image = next(Path(trained["data"]).rglob("*.png"))
    assert main(["embed", "--weights", str(tmp_path / "big.pt"), str(image), "--out", str(tmp_path / "e")]) == 2
    assert "NaN or infinite" in capsys.readouterr().err



def test_a_detector_that_computes_nan_is_not_kept_as_best():
    """A diverged detector has no validation loss and its NaN scores fall under every threshold: box AP 0 was
    kept as best.pt. The engine probes the model before keeping an epoch."""
    from cnnkit.engine.health import computes_finite

    meta = {"task": "detect", "model": "fasterrcnn_mobilenet_v3_small", "classes": ["a"], "num_classes": 1,
            "in_chans": 3, "mean": [0.5] * 3, "std": [0.25] * 3}
    model = build_image_model(meta)
    assert computes_finite(model)
    model.load_state_dict(overflowing(overflowing({"model": model.state_dict()}))["model"])
    assert not computes_finite(model)

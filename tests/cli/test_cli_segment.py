"""The segment task through the CLI: train, val, predict (whole and sliding window), models, summary."""

import json

import numpy as np
import pytest
from PIL import Image

from cnnkit.cli.main import main
from cnnkit.data.synthetic import make_scene
from tests.data.test_segment_data import write_pairs

TRAIN = ["train", "segment", "--model", "unet_basic", "--epochs", "1", "--batch", "4", "--no-verbose"]


def test_train_val_predict_segment(tmp_path, capsys):
    data = write_pairs(tmp_path / "d", 12, "index", size=32)
    assert main([*TRAIN, "--data", str(data), "--val-split", "0.25", "--project", str(tmp_path / "runs"),
                 "--name", "s", "--class-weights", "median", "--loss", "ce+dice"]) == 0
    run = tmp_path / "runs" / "segment" / "s"
    for name in ("best.pt", "last.pt", "config.yaml", "metrics.csv", "per_class.csv", "confusion_matrix.png"):
        assert (run / name).exists(), name
    assert "miou" in (run / "metrics.csv").read_text().splitlines()[0]

    assert main(["val", "--weights", str(run / "best.pt"), "--data", str(data), "--out", str(tmp_path / "v")]) == 0
    out = capsys.readouterr().out
    assert "miou=" in out and "IoU" in out
    assert 0 <= json.loads((tmp_path / "v" / "metrics.json").read_text())["miou"] <= 1

    big = tmp_path / "big.png"
    Image.fromarray(make_scene(1, 5, 200).image).save(big)
    assert main(["predict", "--weights", str(run / "best.pt"), str(big), str(data / "images"), "--tta",
                 "--out", str(tmp_path / "p")]) == 0
    preds = json.loads((tmp_path / "p" / "predictions.json").read_text())
    assert len(preds) == 13 and preds[0]["size"] == [200, 200]
    assert np.asarray(Image.open(tmp_path / "p" / "big_mask.png")).shape == (200, 200)
    assert (tmp_path / "p" / "big_overlay.png").exists() and (tmp_path / "p" / "big_color.png").exists()
    assert (tmp_path / "p" / "predictions.csv").read_text().startswith("path,areas")

    assert main(["predict", "--weights", str(run / "best.pt"), str(big), "--mode", "slide", "--tile", "64",
                 "--probs", "--no-images", "--out", str(tmp_path / "q")]) == 0
    assert np.load(tmp_path / "q" / "big_probs.npy").shape == (3, 200, 200)
    assert not (tmp_path / "q" / "big_overlay.png").exists()


def test_segment_bad_input_is_one_line(tmp_path, capsys):
    data = write_pairs(tmp_path / "d", 4, "binary", size=16)
    assert main([*TRAIN, "--data", str(data), "--project", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "--binary" in err and "Traceback" not in err
    assert main([*TRAIN, "--data", str(data / "nothing"), "--project", str(tmp_path)]) == 2
    assert "nothing: not a folder" in capsys.readouterr().err
    with pytest.raises(SystemExit) as stop:
        main([*TRAIN, "--data", str(data), "--project", str(tmp_path), "--loss", "lovasz"])
    assert stop.value.code == 2 and "invalid choice" in capsys.readouterr().err


def test_segment_models_listed(capsys):
    assert main(["models", "--task", "segment", "--no-flops"]) == 0
    out = capsys.readouterr().out
    for name in ("unet_resnet18", "segnet_basic", "segnet_vgg16", "fcn8s_resnet18", "fcn32s_basic",
                 "deeplabv3plus_resnet50", "unet_mobilenet_v3_large"):
        assert name in out
    assert main(["summary", "unet_basic", "--imgsz", "64", "--num-classes", "3"]) == 0
    assert "[1, 3, 64, 64]" in capsys.readouterr().out


def test_val_with_max_size_scores_full_size_masks(tmp_path, capsys):
    """`cnnkit val` compares each image's logits, resized back, with its full-size mask: the same
    figures as predicting every image and scoring the masks returned."""
    from sklearn.metrics import jaccard_score

    import cnnkit

    data = write_pairs(tmp_path / "d", 12, "index", size=48)
    assert main([*TRAIN, "--data", str(data), "--val-split", "0.25", "--max-size", "24", "--project",
                 str(tmp_path / "runs"), "--name", "m"]) == 0
    weights = tmp_path / "runs" / "segment" / "m" / "best.pt"
    assert main(["val", "--weights", str(weights), "--data", str(data), "--split", "all",
                 "--out", str(tmp_path / "v")]) == 0
    reported = json.loads((tmp_path / "v" / "metrics.json").read_text())

    model = cnnkit.load(weights)
    truth, pred = [], []
    for image in sorted((data / "images").iterdir()):
        truth.append(np.asarray(Image.open(data / "masks" / f"{image.stem}.png")).ravel())
        pred.append(model.predict(str(image), mode="whole")[0]["mask"].ravel())
    truth, pred = np.concatenate(truth), np.concatenate(pred)
    present = sorted(set(truth) | set(pred))
    assert reported["miou"] == pytest.approx(jaccard_score(truth, pred, labels=present, average="macro"), abs=1e-6)
    assert reported["pixel_acc"] == pytest.approx((truth == pred).mean(), abs=1e-6)


def test_demo_segment_smoke(tmp_path, capsys):
    assert main(["demo", "--task", "segment", "--epochs", "1", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "cnnkit demo (segment): background + 4 shape classes" in out and "validation: miou=" in out
    assert len(list((tmp_path / "predictions_segment").glob("*_overlay.png"))) == 6


def test_segment_trains_and_resumes_without_model_flags(tmp_path):
    """Regression: without --model a segment run took classify's basic_cnn, and --resume refused it before
    reading the run's own config."""
    common = ["--data", "shapes:16", "--imgsz", "32", "--batch", "8", "--project", str(tmp_path), "--name", "r",
              "--no-verbose"]
    assert main(["train", "segment", *common, "--epochs", "1"]) == 0
    assert main(["train", "segment", "--resume", "--name", "r", "--project", str(tmp_path), "--epochs", "2",
                 "--no-verbose"]) == 0
    rows = (tmp_path / "segment" / "r" / "metrics.csv").read_text().splitlines()
    assert len(rows) == 3 and "model: unet_basic" in (tmp_path / "segment" / "r" / "config.yaml").read_text()

"""A fifth task from the test folder alone (tests/tasks/toy/) and one registration line: trained, validated,
predicted (PyTorch and ONNX) and exported through the CLI, and served by the options its spec declares."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cnnkit.cli.main import main
from cnnkit.tasks import register_task, unregister_task
from tests.tasks.toy import SPEC


@pytest.fixture
def toy():
    register_task(SPEC)  # the one registration line
    yield SPEC
    unregister_task(SPEC.name)


def grey(path, level: int):
    Image.fromarray(np.full((20, 20), level, np.uint8)).save(path)
    return path


def test_a_toy_task_trains_validates_predicts_and_exports_through_the_cli(toy, tmp_path, capsys):
    runs = tmp_path / "runs"
    assert main(["train", "brightness", "--data", "toy:512", "--model", "brightness_cnn", "--epochs", "4",
                 "--batch", "32", "--lr", "0.2", "--project", str(runs), "--name", "t", "--no-verbose"]) == 0
    weights = runs / "brightness" / "t" / "best.pt"
    assert weights.is_file() and (weights.parent / "config.yaml").is_file()
    assert main(["val", "--weights", str(weights), "--data", "toy:64", "--out", str(tmp_path / "val")]) == 0
    score = json.loads((tmp_path / "val" / "metrics.json").read_text())["score"]
    assert score > 0.8  # 1 - mean absolute error of brightness in 0..1; a constant guess scores about 0.75

    images = [grey(tmp_path / "dark.png", 30), grey(tmp_path / "light.png", 220)]
    out = tmp_path / "pred"
    assert main(["predict", "--weights", str(weights), *map(str, images), "--decimals", "2", "--out", str(out)]) == 0
    records = json.loads((out / "predictions.json").read_text())
    assert records[0]["brightness"] < records[1]["brightness"]
    assert all(round(r["brightness"], 2) == r["brightness"] for r in records)

    # a new process knows the task from its registration alone: the model registered in its task.py loads too
    code = ("import sys; from cnnkit.tasks import register_task; from tests.tasks.toy import SPEC; "
            "register_task(SPEC); from cnnkit.cli.main import main; "
            f"sys.exit(main(['predict', '--weights', r'{weights}', r'{images[0]}', '--out', r'{tmp_path / 'fresh'}']))")
    fresh = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                           cwd=Path(__file__).parents[2])
    assert fresh.returncode == 0, fresh.stderr

    assert main(["export", "--weights", str(weights), "--dynamic"]) == 0
    onnx = weights.with_suffix(".onnx")
    out2 = tmp_path / "pred_onnx"
    assert main(["predict", "--weights", str(onnx), *map(str, images), "--out", str(out2)]) == 0
    exported = json.loads((out2 / "predictions.json").read_text())
    assert [round(r["brightness"], 2) for r in exported] == [r["brightness"] for r in records]


def test_a_toy_task_flags_come_from_its_spec(toy, capsys):
    with pytest.raises(SystemExit):
        main(["train", "brightness", "--help"])
    help_text = capsys.readouterr().out
    assert "--lr" in help_text and "--ignore-index" not in help_text and "--binary" not in help_text
    with pytest.raises(SystemExit) as stop:  # the range comes from the spec's options dataclass
        main(["predict", "--weights", "nowhere.pt", "x.png", "--decimals", "9"])
    assert stop.value.code == 2 and "--decimals" in capsys.readouterr().err


def test_data_check_finds_the_toy_layout_and_names_the_toy_task(toy, tmp_path, capsys):
    for level in (30, 120, 220):
        grey(tmp_path / f"g{level}.png", level)
    (tmp_path / "toy.txt").write_text("brightness data\n")
    assert main(["data", "check", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"found: toy layout in {tmp_path} (toy.txt marker), 3 images")
    assert "task: brightness (a toy.txt marker beside the images)" in out and "all: 3 images" in out
    assert "also matched" not in out  # pretraining reads any images: a catch-all, not named beside a marker
    assert out.rstrip().endswith(f"train with: cnnkit train brightness --data {tmp_path}")
def test_a_toy_task_train_option_is_a_flag_reaches_the_task_and_is_refused_elsewhere(toy, tmp_path, capsys):
    """Its TrainOptions field is a flag with its own default, unit and range; it lands in config.yaml (flat) and
    reaches the task (kept in the card); another task refuses it by name from the CLI, a recipe and the API."""
    with pytest.raises(SystemExit):
        main(["train", "brightness", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "--noise NOISE pixel noise of the synthetic grey images" in help_text
    assert "(grey levels, 0.0 to 64.0) [default: 8.0]" in help_text
    runs = tmp_path / "runs"
    assert main(["train", "brightness", "--data", "toy:64", "--model", "brightness_cnn", "--epochs", "1",
                 "--noise", "2.5", "--project", str(runs), "--name", "n", "--no-verbose"]) == 0
    run = runs / "brightness" / "n"
    assert "noise: 2.5" in (run / "config.yaml").read_text()
    from cnnkit.api import load

    assert load(run / "best.pt").meta.value("noise", 0.0) == 2.5

    assert main(["train", "brightness", "--data", "toy:64", "--noise", "99"]) == 2  # its own range
    assert "--noise must be at most 64.0, got 99.0" in capsys.readouterr().err
    assert main(["train", "classify", "--data", "shapes", "--noise", "1"]) == 2
    err = capsys.readouterr().err
    assert "--noise is an option of brightness, not classify" in err and err.count("\n") == 1
    recipe = tmp_path / "r.yaml"
    recipe.write_text("noise: 1.0\n")
    assert main(["train", "classify", "--config", str(recipe), "--data", "shapes"]) == 2
    assert "r.yaml: 'noise' is an option of brightness, not classify" in capsys.readouterr().err
    import cnnkit
    from cnnkit.errors import CnnkitError

    with pytest.raises(CnnkitError, match="'noise' is an option of brightness, not classify"):
        cnnkit.train(task="classify", data="shapes", noise=1.0)

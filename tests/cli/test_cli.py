"""The CLI end to end, and bad input: one line, exit code 2, no traceback."""

import json
import subprocess
import sys

import pytest
from PIL import Image

from cnnkit.cli.main import main

TRAIN = ["train", "classify", "--model", "basic_cnn", "--imgsz", "24", "--epochs", "1", "--batch", "16",
         "--no-verbose"]


@pytest.fixture
def trained(tmp_path, shapes_folder):
    assert main([*TRAIN, "--data", str(shapes_folder), "--project", str(tmp_path / "runs"), "--name", "t"]) == 0
    return tmp_path / "runs" / "classify" / "t" / "best.pt"


def test_train_val_predict(tmp_path, shapes_folder, trained, capsys):
    assert main(["val", "--weights", str(trained), "--data", str(shapes_folder), "--out", str(tmp_path / "v")]) == 0
    out = capsys.readouterr().out
    assert "top1=" in out and "16 images" in out
    assert (tmp_path / "v" / "confusion_matrix.png").exists()
    metrics = json.loads((tmp_path / "v" / "metrics.json").read_text())
    assert 0 <= metrics["top1"] <= 1

    images = shapes_folder / "val"
    assert main(["predict", "--weights", str(trained), str(images / "circle"), str(images / "s*" / "*.png"),
                 "--topk", "2", "--out", str(tmp_path / "p")]) == 0
    preds = json.loads((tmp_path / "p" / "predictions.json").read_text())
    n_expected = len(list((images / "circle").glob("*.png"))) + len(list(images.glob("s*/*.png")))
    assert len(preds) == n_expected and len(preds[0]["topk"]) == 2
    assert abs(sum(t["score"] for t in preds[0]["topk"]) - 1) < 1 or preds[0]["score"] <= 1
    assert (tmp_path / "p" / "predictions.csv").read_text().startswith("path,class,score,topk")
    assert len(list((tmp_path / "p").rglob("*_pred.png"))) == n_expected
    assert {p.parent.name for p in (tmp_path / "p").rglob("*_pred.png")} == {"circle", "square", "star"}


def test_config_recipe_and_flag_precedence(tmp_path, shapes_folder):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("epochs: 3\nbatch: 8\nmodel_args: {preset: tiny}\n")
    assert main([*TRAIN, "--data", str(shapes_folder), "--config", str(recipe), "--project", str(tmp_path)]) == 0
    saved = (tmp_path / "classify" / "exp" / "config.yaml").read_text()
    assert "epochs: 1" in saved and "batch: 16" in saved and "preset: tiny" in saved


def test_models_and_summary(capsys):
    assert main(["models", "--no-flops"]) == 0
    out = capsys.readouterr().out
    for name in ("basic_cnn", "fastnet", "resnet18", "resnet50", "mobilenet_v3_small", "efficientnet_b0"):
        assert name in out
    assert main(["summary", "basic_cnn", "--imgsz", "28", "--in-chans", "1"]) == 0
    out = capsys.readouterr().out
    assert "features.0.0" in out and "[1, 32, 28, 28]" in out and "total" in out


def test_summary_draws_the_diagram(tmp_path, capsys):
    import xml.etree.ElementTree as ET

    svg, png = tmp_path / "net.svg", tmp_path / "out" / "net.png"
    assert main(["summary", "basic_cnn", "--imgsz", "28", "--in-chans", "1", "--diagram", str(svg)]) == 0
    assert f"diagram: {svg}" in capsys.readouterr().out
    texts = [t.text for t in ET.parse(svg).getroot().iter("{http://www.w3.org/2000/svg}text")]
    assert "basic_cnn, input 1×28×28" in texts and "conv 3×3, 32" in texts and "dropout 0.5" in texts
    assert main(["summary", "basic_cnn", "--imgsz", "28", "--diagram", str(png)]) == 0
    assert png.read_bytes()[:4] == b"\x89PNG"
    assert main(["summary", "basic_cnn", "--diagram", str(tmp_path / "net.pdf")]) == 2
    err = capsys.readouterr().err
    assert "net.pdf: a diagram is written as .svg or .png" in err and err.count("\n") == 1
    assert not (tmp_path / "net.pdf").exists()


def _small_unet_checkpoint(path):
    """A segmenter trained at native size (imgsz 0, crop 40x48) with widths unlike unet_basic's defaults."""
    import torch

    from cnnkit import __version__
    from cnnkit.engine.checkpoint import save_checkpoint
    from cnnkit.models.wrapper import build_image_model
    from tests.export.helpers import META, STATS

    meta = {**META["segment"], **STATS, "imgsz": 0, "crop": [40, 48],
            "model_args": {"widths": [8, 12, 16, 20, 24], "decoder_channels": [24, 20, 16, 12, 8]}}
    torch.manual_seed(0)
    model = build_image_model(meta)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_checkpoint({"cnnkit_version": __version__, "task": "segment", "meta": model.meta, "config": {},
                     "model": model.state_dict(), "epoch": 0, "best_fitness": 0.0, "metrics": {}}, path)
    return path


def test_summary_of_a_checkpoint_or_run_folder(tmp_path, capsys):
    import xml.etree.ElementTree as ET

    ckpt = _small_unet_checkpoint(tmp_path / "run" / "last.pt")  # a run folder with last.pt alone
    svg = tmp_path / "net.svg"
    for source in (ckpt, ckpt.parent):
        assert main(["summary", str(source), "--diagram", str(svg)]) == 0
        out = capsys.readouterr().out
        assert out.startswith(f"{ckpt}: unet_basic (segment), input [1, 3, 40, 48]")  # the card's crop
        first = next(line for line in out.splitlines() if line.startswith("encoder.stages.0.0.0 "))
        assert "[1, 8, " in first  # the card's widths (8, ...), not unet_basic's defaults (32, ...)
        pools = [line.split("MaxPool2d")[1].split("]")[0] for line in out.splitlines()
                 if line.startswith("encoder.pool ")]
        assert len(pools) == 5 and "[" not in "".join(p.strip()[1:] for p in pools)  # a shape per call
        assert len(set(pools)) == 5
        texts = [t.text for t in ET.parse(svg).getroot().iter("{http://www.w3.org/2000/svg}text")]
        assert "unet_basic, input 3×40×48" in texts and "SegmentationModel" not in " ".join(map(str, texts))
    assert main(["summary", str(ckpt), "--imgsz", "32", "--in-chans", "3"]) == 0
    assert "input [1, 3, 32, 32]" in capsys.readouterr().out.splitlines()[0]


@pytest.mark.parametrize("case", ["missing .pt", "no checkpoint", "diagram blocked"])
def test_summary_errors_name_its_own_arguments(tmp_path, capsys, case):
    (tmp_path / "file").write_text("x")
    args = {"missing .pt": [str(tmp_path / "gone.pt")], "no checkpoint": [str(tmp_path)],
            "diagram blocked": ["basic_cnn", "--imgsz", "28", "--diagram", str(tmp_path / "file" / "d.svg")]}[case]
    assert main(["summary", *args]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--out" not in err and "--weights" not in err and "--project" not in err
    said = {"missing .pt": "no such checkpoint", "no checkpoint": "holds no best.pt or last.pt",
            "diagram blocked": "give --diagram a file"}[case]
    assert said in err


def test_help_shows_examples(capsys):
    for cmd in ("train", "val", "predict", "summary"):
        with pytest.raises(SystemExit):
            main([cmd, "--help"])
        assert "examples:" in capsys.readouterr().out


@pytest.mark.parametrize("argv, match", [
    (["train", "classify", "--data", "no/such/dir"], "no/such/dir: not found"),
    (["train", "classify", "--data", "shapes", "--model", "resnt18"], "Did you mean 'resnet18'"),
    (["train", "classify", "--data", "shapes", "--resume", "--project", "PROJECT"], "nothing to resume"),
    (["train", "segmentt", "--data", "shapes"], "unknown task 'segmentt'"),
    (["train", "classify", "--data", "shapes", "--binary"], "--binary is an option of segment, not classify"),
    (["train", "instance", "--data", "shapes", "--loss", "ce"], "--loss is an option of classify, segment and "
                                                                 "recognize, not instance"),
    (["train", "pretrain", "--data", "shapes", "--augment", "strong"], "--augment is an option of"),
    (["train", "segment", "--resume", "--name", "nothere", "--project", "PROJECT"], "holds no last.pt"),
    (["val", "--weights", "missing.pt", "--data", "shapes"], "missing.pt: checkpoint not found"),
    (["predict", "--weights", "missing.pt", "x.png"], "missing.pt: checkpoint not found"),
])
def test_bad_input_is_one_line_exit_2(tmp_path, capsys, argv, match):
    argv = [a.replace("PROJECT", str(tmp_path)) for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert match in err and err.count("\n") == 1 and "Traceback" not in err


def test_val_with_another_number_of_classes(tmp_path, trained, capsys):
    import numpy as np

    from tests.conftest import write_png

    other = tmp_path / "other"
    for name in ("cat", "dog"):
        write_png(other / name / "a.png", np.zeros((24, 24, 3), np.uint8))
    assert main(["val", "--weights", str(trained), "--data", str(other)]) == 2
    err = capsys.readouterr().err  # the class sets named, not one label to fix
    assert "the data's classes (cat, dog) differ from the model's (circle, square, star, triangle)" in err
    assert "fix the label" not in err and err.count("\n") == 1


def test_val_of_a_classifier_on_segmentation_data_says_so(tmp_path, trained, capsys):
    """Regression: images/ + masks/ given to a classifier read as classes 'images' and 'masks', and the error
    said to fix the label 'images'."""
    import numpy as np

    from tests.conftest import write_png

    for sub in ("images", "masks"):
        write_png(tmp_path / "seg" / sub / "a.png", np.zeros((24, 24, 3), np.uint8))
    assert main(["val", "--weights", str(trained), "--data", str(tmp_path / "seg")]) == 2
    err = capsys.readouterr().err
    assert "images/ beside masks/ is a segmentation or instance layout, not folders of classes" in err


def test_predict_unsupported_file(tmp_path, trained, capsys):
    (tmp_path / "notes.txt").write_text("x")
    assert main(["predict", "--weights", str(trained), str(tmp_path / "notes.txt")]) == 2
    assert "unsupported file type '.txt'" in capsys.readouterr().err


def test_predict_skip_bad_skips_what_it_offers_to_skip(tmp_path, trained, capsys):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "zero.jpg").write_bytes(b"")
    Image.new("RGB", (24, 24)).save(tmp_path / "in" / "ok.png")
    assert main(["predict", "--weights", str(trained), str(tmp_path / "in"), "--out", str(tmp_path / "p")]) == 2
    assert "zero.jpg: empty file" in capsys.readouterr().err
    assert main(["predict", "--weights", str(trained), str(tmp_path / "in"), "--skip-bad",
                 "--out", str(tmp_path / "p2")]) == 0
    assert len(json.loads((tmp_path / "p2" / "predictions.json").read_text())) == 1


def test_exit_code_and_debug_in_a_real_process(tmp_path):
    cmd = [sys.executable, "-m", "cnnkit.cli.main", "train", "classify", "--data", str(tmp_path / "none")]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().startswith("error:") and "none: not found" in proc.stderr
    proc = subprocess.run([*cmd, "--debug"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1 and "Traceback" in proc.stderr


def test_predict_outputs_mirror_a_linked_folder_as_given(tmp_path, trained, monkeypatch):
    """Regression: with pr/linked -> pool/sub, pr/linked/s0.png's picture went to pp/pool/sub/ (the link
    resolved); outputs mirror the paths as the user gave them."""
    import numpy as np

    from tests.conftest import write_png

    write_png(tmp_path / "pool" / "sub" / "s0.png", np.full((24, 24, 3), 100, np.uint8))
    write_png(tmp_path / "pr" / "top.png", np.full((24, 24, 3), 50, np.uint8))
    (tmp_path / "pr" / "linked").symlink_to(tmp_path / "pool" / "sub", target_is_directory=True)
    monkeypatch.chdir(tmp_path)  # relative paths, as typed
    assert main(["predict", "--weights", str(trained), "pr", "--out", "pp"]) == 0
    written = sorted(p.relative_to(tmp_path / "pp").as_posix() for p in (tmp_path / "pp").rglob("*_pred.png"))
    assert written == ["linked/s0_pred.png", "top_pred.png"]
    assert main(["predict", "--weights", str(trained), "pr/linked", "--out", "pq"]) == 0
    assert [p.name for p in (tmp_path / "pq").rglob("*_pred.png")] == ["s0_pred.png"]


def test_predict_keeps_same_named_files_apart(tmp_path, trained):
    import numpy as np

    from tests.conftest import write_png

    for folder in ("x", "y"):
        write_png(tmp_path / "in" / folder / "a.png", np.full((24, 24, 3), 100, np.uint8))
    assert main(["predict", "--weights", str(trained), str(tmp_path / "in"), "--out", str(tmp_path / "p")]) == 0
    # the outputs mirror the input folders (they were a_pred.png and a_1_pred.png, which said nothing of which)
    assert sorted(p.relative_to(tmp_path / "p").as_posix() for p in (tmp_path / "p").rglob("*_pred.png")) == [
        "x/a_pred.png", "y/a_pred.png"]
    assert (tmp_path / "p" / "predictions.csv").read_text().count("a.png") == 2
    write_png(tmp_path / "in" / "x" / "a.jpg", np.full((24, 24, 3), 100, np.uint8))
    assert main(["predict", "--weights", str(trained), str(tmp_path / "in" / "x"), "--out", str(tmp_path / "q")]) == 0
    # a.jpg comes first (sorted) and keeps the plain name; a.png, second, gets its suffix
    assert sorted(p.name for p in (tmp_path / "q").rglob("*_pred.png")) == ["a_png_pred.png", "a_pred.png"]


def test_prediction_help_gives_each_tasks_own_default_and_range(capsys):
    """Regression: a flag shared by tasks showed the first task's help: --tile said 'at least 16; 0: the training
    crop' although instance models need at least 64 and 0 means twice the crop."""
    for command in (["predict", "--weights", "w.pt", "x.png"], ["val", "--weights", "w.pt", "--data", "d"]):
        with pytest.raises(SystemExit):
            main([command[0], "--help"])
        text = " ".join(capsys.readouterr().out.split())
        if command[0] == "predict":
            assert "segment: tile side, 0 or at least 16; 0: the training crop" in text
            assert "instance, detect: tile side, 0 or at least 64; 0: twice the training crop" in text
        assert "--tta" in text


def test_train_help_shows_the_tasks_own_options_only(capsys):
    with pytest.raises(SystemExit):
        main(["train", "classify", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--label-smoothing" in text and "(probability mass, at least 0.0, below 1.0) [default: 0.0]" in text
    assert "--binary" not in text and "--method" not in text and "--max-size" not in text
    with pytest.raises(SystemExit):
        main(["train", "pretrain", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--method {simclr,vicreg,mae}" in text and "--augment" not in text and "--loss" not in text


def test_demo_offers_every_task_with_a_demo(capsys):
    """Regression: the demo's --task choices were a literal tuple that left out detect."""
    from cnnkit.cli.demo import demo_tasks
    from cnnkit.tasks import task_names

    assert "detect" in demo_tasks(everything=True) and "detect" not in demo_tasks()
    assert set(demo_tasks(everything=True)) == set(task_names())
    with pytest.raises(SystemExit):
        main(["demo", "--help"])
    assert "detect" in capsys.readouterr().out
    with pytest.raises(SystemExit) as stop:
        main(["demo", "--task", "segmnt"])
    assert stop.value.code == 2


def test_a_mistyped_flag_names_its_subcommand_and_the_closest_flag(capsys):
    """Regression: `train classify --ephocs 1` said "cnnkit: unrecognized arguments ...; see cnnkit --help"."""
    with pytest.raises(SystemExit, match="2"):
        main(["train", "classify", "--ephocs", "1"])
    err = capsys.readouterr().err
    assert err == ("error: cnnkit train classify: unrecognized arguments: --ephocs 1 (did you mean --epochs?); see "
                   "cnnkit train classify --help\n")
    with pytest.raises(SystemExit, match="2"):
        main(["predict", "--weights", "w.pt", "--score-tresh", "0.3", "a.png"])
    assert "cnnkit predict: unrecognized arguments: --score-tresh (did you mean --score-thresh?)" in (
        capsys.readouterr().err)


def test_the_next_step_after_pretraining_fine_tunes_in_the_models_own_task():
    """Regression: `train pretrain --model unet_basic` suggested `train classify --model unet_basic`, refused."""
    from cnnkit.cli.commands import _task_of_model

    assert _task_of_model("unet_basic") == "segment" and _task_of_model("fastnet_small") == "classify"
    assert _task_of_model("maskrcnn_resnet18") == "instance"

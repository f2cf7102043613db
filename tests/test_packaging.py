"""What a pip install gives: the extras named when missing, recipes by name, `python -m cnnkit`, next steps."""

import subprocess
import sys

import pytest

from cnnkit.cli.main import main
from cnnkit.config import load_yaml, recipe_names
from cnnkit.errors import CnnkitError, require


def test_a_missing_extra_is_named(monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # as if not installed: importing it raises ImportError
    with pytest.raises(CnnkitError, match=r"needs onnxruntime, which is not installed: pip install 'cnnkit\[export\]'"):
        require("onnxruntime", "export", "running an .onnx file")


def test_serve_without_its_extra_is_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "uvicorn", None)
    assert main(["serve", "--weights", str(tmp_path / "best.pt")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: cnnkit serve needs uvicorn") and "cnnkit[serve]" in err


def test_recipes_ship_with_the_package_and_load_by_name():
    assert {"dsb2018_maskrcnn", "camvid_unet", "fashion_fast"} <= set(recipe_names())
    assert load_yaml("dsb2018_maskrcnn")["model"].startswith("maskrcnn")
    with pytest.raises(CnnkitError, match="name a recipe that ships with cnnkit: camvid_unet"):
        load_yaml("no_such_recipe")


def test_python_dash_m_cnnkit():
    proc = subprocess.run([sys.executable, "-m", "cnnkit", "--version"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and proc.stdout.startswith("cnnkit ")


def test_train_ends_with_the_next_commands(tmp_path, shapes_folder, capsys):
    assert main(["--quiet", "train", "classify", "--data", str(shapes_folder), "--model", "basic_cnn", "--imgsz", "24",
                 "--epochs", "1", "--project", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    best = tmp_path / "classify" / "exp" / "best.pt"
    assert f"cnnkit val --weights {best} --data {shapes_folder}" in out
    assert f"cnnkit export --weights {best}" in out


def test_export_checks_its_extra_before_writing(tmp_path, monkeypatch, capsys):
    """Regression: export --verify without onnxruntime wrote the .onnx file, then failed."""
    from tests.export.helpers import write_checkpoint

    weights = write_checkpoint(tmp_path, "classify")
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    assert main(["export", "--weights", str(weights), "--verify", "--out", str(tmp_path / "m.onnx")]) == 2
    assert "cnnkit[export]" in capsys.readouterr().err and not (tmp_path / "m.onnx").exists()

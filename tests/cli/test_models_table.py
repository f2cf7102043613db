"""`cnnkit models`: counted on the meta device, cached, aligned."""

from cnnkit.cli import models_table
from cnnkit.cli.main import main


def test_models_table_is_cached_and_aligned(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert main(["models"]) == 0
    first = capsys.readouterr().out.splitlines()
    assert (tmp_path / "cnnkit" / "models.json").is_file()
    starts = {line.index(line.split()[1], len(line.split()[0])) for line in first[:-1]}
    assert len(starts) == 1  # the task column starts at one place in every row, long names included
    row = next(line for line in first if line.startswith("resnet18 "))
    assert "11,181,642" in row and "imagenet" in row  # resnet18 at 10 classes, as torchvision counts it

    def fail() -> None:
        raise AssertionError("the cached table was rebuilt")

    monkeypatch.setattr(models_table, "build_rows", fail)
    assert main(["models", "--task", "instance"]) == 0
    rows = capsys.readouterr().out.splitlines()[1:-1]  # after the header, before the timm line
    assert rows and all(r.split()[1] == "instance" for r in rows)

    monkeypatch.setattr(models_table, "cache_key", lambda: "another release")
    monkeypatch.setattr(models_table, "build_rows", lambda: [{"model": "m", "task": "classify", "params": -1,
                                                              "weights": "cnnkit", "description": "d"}])
    assert main(["models"]) == 0  # a stale cache is rebuilt
    assert capsys.readouterr().out.splitlines()[1].split()[:3] == ["m", "classify", "-"]


def test_models_table_without_a_writable_cache(tmp_path, monkeypatch, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker))  # a file where the cache folder would be
    assert main(["models", "--task", "classify"]) == 0
    assert "basic_cnn" in capsys.readouterr().out


def test_models_table_has_flops_as_a_real_pass_counts_them(tmp_path, monkeypatch, capsys):
    """Regression: the README promised FLOPs in `cnnkit models`, and the table had none (only with --flops,
    which built and ran every model)."""
    from cnnkit.models import create_model
    from cnnkit.models.summary import count_flops

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert main(["models", "--task", "classify"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "GFLOPs@224" in lines[0]
    real = count_flops(create_model("resnet18", num_classes=10, in_chans=3), (1, 3, 224, 224)) / 1e9
    assert next(line for line in lines if line.startswith("resnet18 ")).split()[3] == f"{real:.3f}"
    assert main(["models", "--task", "detect"]) == 0
    assert capsys.readouterr().out.splitlines()[1].split()[3] == "-"  # a detector's work depends on what it finds
    assert main(["models", "--task", "classify", "--imgsz", "32"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "GFLOPs@32" in lines[0] and float(next(x for x in lines if x.startswith("resnet18 ")).split()[3]) < 0.1
    assert main(["models", "--task", "classify", "--no-flops"]) == 0
    assert "GFLOPs" not in capsys.readouterr().out

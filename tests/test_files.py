"""Run folders are claimed atomically, a run name cannot leave --project, and outputs hold no NaN."""

from __future__ import annotations

import json
import math
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from cnnkit.cli.main import main
from cnnkit.files import atomic_write_csv, claim_folder, json_bytes


def test_claim_folder_never_gives_one_folder_twice(tmp_path):
    with ThreadPoolExecutor(8) as pool:
        got = list(pool.map(lambda _: claim_folder(tmp_path / "runs" / "conc"), range(16)))
    assert len(set(got)) == 16
    assert {p.name for p in got} == {"conc"} | {f"conc{n}" for n in range(2, 17)}


def test_claim_folder_takes_an_empty_left_over_folder_once(tmp_path):
    (tmp_path / "exp").mkdir()
    (tmp_path / "exp" / ".best.pt.123.tmp").write_bytes(b"")  # a killed writer's partial file
    assert claim_folder(tmp_path / "exp") == tmp_path / "exp"
    assert claim_folder(tmp_path / "exp") == tmp_path / "exp2"


def test_two_runs_with_one_name_get_two_folders(tmp_path):
    args = ["train", "classify", "--data", "shapes:16", "--model", "basic_cnn", "--imgsz", "16", "--epochs", "1",
            "--no-verbose", "--project", str(tmp_path), "--name", "conc"]
    assert main(args) == 0 and main(args) == 0
    assert (tmp_path / "classify" / "conc" / "best.pt").is_file()
    assert (tmp_path / "classify" / "conc2" / "best.pt").is_file()


def test_run_name_cannot_leave_project(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code = main(["train", "classify", "--data", "shapes:16", "--model", "basic_cnn", "--imgsz", "16",
                 "--epochs", "1", "--project", "p", "--name", "../../../escape"])
    assert code == 2
    assert "--name ../../../escape" in capsys.readouterr().err
    assert not any(Path(tmp_path).parent.glob("escape")) and not (tmp_path / "escape").exists()


# output files hold no NaN or Infinity literals: undefined values are empty CSV cells and JSON nulls


def test_undefined_values_are_empty_cells(tmp_path):
    path = tmp_path / "rows.csv"
    atomic_write_csv(path, [{"class": "a", "iou": float("nan"), "acc": math.inf, "n": 0}, {"class": "b", "iou": 0.5}])
    assert path.read_text().splitlines() == ["class,iou,acc,n", "a,,,0", "b,0.5,,"]


def test_undefined_values_are_json_null():
    data = {"miou": float("nan"), "per": [1.0, -math.inf, (2, float("nan"))], "name": "x"}
    text = json_bytes(data).decode()
    assert "NaN" not in text and "Infinity" not in text
    assert json.loads(text) == {"miou": None, "per": [1.0, None, [2, None]], "name": "x"}


def test_a_folder_claimed_by_a_killed_run_is_taken_again(tmp_path):
    import subprocess
    import sys

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / ".cnnkit-run").write_text(dead.stdout.strip())  # killed before its config.yaml
    assert claim_folder(tmp_path / "run") == tmp_path / "run"
    assert claim_folder(tmp_path / "run") == tmp_path / "run2"  # this process holds it now

"""Run folders are claimed atomically, and a run name cannot leave --project."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from cnnkit.cli.main import main
from cnnkit.files import claim_folder


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

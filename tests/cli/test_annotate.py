"""`cnnkit annotate`: its flags, and the one-line refusals before anything is served or written."""

from __future__ import annotations

import pytest

import cnnkit.serve.annotate as served
from cnnkit.cli.main import main
from tests.serve.annotate_fakes import scenes


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    return err


@pytest.mark.parametrize("make, said", [
    (lambda tmp: tmp / "missing", "no such folder"),
    (lambda tmp: (tmp / "a.png").write_bytes(b"x") and tmp / "a.png", "not a folder"),
    (lambda tmp: (tmp / "empty").mkdir() or tmp / "empty", "no images"),
])
def test_a_bad_folder_is_one_line_before_serving(tmp_path, capsys, monkeypatch, make, said):
    monkeypatch.setattr(served, "serve_annotate", lambda *a, **k: pytest.fail("served"))
    assert main(["annotate", str(make(tmp_path)), "--no-browser"]) == 2
    assert said in one_line_error(capsys)


@pytest.mark.parametrize("flags, said", [
    (["--classes", " , "], "no class names"),
    (["--classes", "cat,dog,cat"], "cat named twice"),
    (["--classes", "background,cat"], "'background' is class 0"),
    (["--out", "{folder}"], "the output is the source folder"),
])
def test_bad_flags_are_one_line(tmp_path, capsys, monkeypatch, flags, said):
    monkeypatch.setattr(served, "serve_annotate", lambda *a, **k: pytest.fail("served"))
    folder = scenes(tmp_path / "photos", n=1)
    flags = [f.format(folder=folder) for f in flags]
    assert main(["annotate", str(folder), "--no-browser", *flags]) == 2
    assert said in one_line_error(capsys)
    assert not (tmp_path / "photos_annotated").exists()


def test_annotate_serves_a_store_and_a_clicker(tmp_path, monkeypatch, capsys):
    calls = []
    monkeypatch.setattr(served, "serve_annotate", lambda *a, **k: calls.append((a, k)))
    folder = scenes(tmp_path / "photos", n=2)
    assert main(["annotate", str(folder), "--classes", "cell,debris", "--port", "8123", "--no-browser"]) == 0
    (store, clicker, classes, host, port), options = calls[-1]
    assert clicker.name == "seeded" and classes == ["cell", "debris"] and (host, port) == ("127.0.0.1", 8123)
    assert options == {"browser": False} and len(store.images) == 2
    assert store.out == tmp_path / "photos_annotated" and (store.out / "classes.csv").is_file()
    assert main(["annotate", str(folder)]) == 0  # opened again: its classes are kept
    assert calls[-1][0][2] == ["cell", "debris"] and calls[-1][1] == {"browser": True}
    assert main(["annotate", str(folder), "--classes", "other"]) == 2
    assert "cell,debris" in one_line_error(capsys)


def test_weights_of_another_task_are_refused(tmp_path, monkeypatch, capsys):
    from tests.export.helpers import write_checkpoint

    monkeypatch.setattr(served, "serve_annotate", lambda *a, **k: pytest.fail("served"))
    weights = write_checkpoint(tmp_path, "classify")
    assert main(["annotate", str(scenes(tmp_path / "photos", n=1)), "--weights", str(weights)]) == 2
    assert "cnnkit train click" in one_line_error(capsys)


def test_help_names_the_flags(capsys):
    with pytest.raises(SystemExit):
        main(["annotate", "--help"])
    out = capsys.readouterr().out
    for flag in ("--weights", "--out", "--classes", "--layout", "--host", "--port", "--no-browser"):
        assert flag in out


def test_the_browser_opens_once_the_server_listens(monkeypatch):
    opened = []
    monkeypatch.setattr("webbrowser.open", opened.append)

    class Server:
        started, should_exit = True, False

    served._open_when_up(Server(), "http://127.0.0.1:8010/")
    assert opened == ["http://127.0.0.1:8010/"]
    Server.started, Server.should_exit = False, True  # stopped before it listened: nothing opens
    served._open_when_up(Server(), "http://127.0.0.1:8010/")
    assert len(opened) == 1

"""report.html: written when training ends, self-contained, rebuilt by `cnnkit report RUN`, each part saying why
when it cannot be made."""

from __future__ import annotations

import logging
import re
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest

from cnnkit.cli.main import main
from cnnkit.engine.checkpoint import load_checkpoint, save_checkpoint
from cnnkit.files import is_temporary
from cnnkit.report import report_after_training, write_report
from cnnkit.report.sections import metric_groups, results_section
from tests.export.helpers import write_checkpoint

SECTIONS = ("curves", "results", "worst", "explain", "architecture", "config")


def attributes(html: str, name: str) -> list[str]:
    return re.findall(rf'\b{name}\s*=\s*["\']([^"\']*)["\']', html)


def test_training_writes_a_self_contained_report(trained_run: Path):
    html = (trained_run / "report.html").read_text()
    sources, links = attributes(html, "src"), attributes(html, "href") + attributes(html, "xlink:href")
    assert sources and all(s.startswith("data:image/") for s in sources)  # every picture inline
    assert all(link.startswith("#") for link in links)  # links go to the page's own sections, never out
    assert not re.search(r"<script|<link|@import|url\(\s*['\"]?http", html)
    for key in SECTIONS:
        assert f'<section id="{key}">' in html, key
    assert "classify" in html and "basic_cnn" in html and "top1" in html  # the run, its model, its figures
    assert "confusion_matrix.csv" in html and "per_class.csv" in html and "<table>" in html
    assert "true: " in html and html.count('<div class="item">') == 8  # the worst images, each with its truth
    assert "task: classify" not in html and ">imgsz<" in html  # config.yaml as a table


def test_report_command_rebuilds_it(trained_run: Path, tmp_path: Path, capsys):
    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    (run / "report.html").unlink()
    assert main(["report", str(run), "--images", "12", "--show", "3"]) == 0
    assert capsys.readouterr().out.strip() == str(run / "report.html")
    html = (run / "report.html").read_text()
    assert html.count('<div class="item">') == 3 and "The 3 of 12 validation images scored" in html
    assert not [p for p in run.iterdir() if is_temporary(p)]  # written atomically: no temporary file left


@pytest.mark.parametrize("made", ["missing", "empty"])
def test_a_folder_without_a_checkpoint_is_refused_in_one_line(tmp_path: Path, capsys, made):
    folder = tmp_path / "run"
    if made == "empty":
        folder.mkdir()
        (folder / "metrics.csv").write_text("epoch,top1\n1,0.5\n")
    assert main(["report", str(folder)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(folder) in err
    assert ("best.pt or last.pt" if made == "empty" else "not a folder") in err
    assert not (folder / "report.html").exists()


def test_each_part_says_why_it_is_missing(trained_run: Path, tmp_path: Path):
    """A run without metrics.csv, task figures or config, and no images scored: a report all the same."""
    run = tmp_path / "run"
    run.mkdir()
    shutil.copy(trained_run / "best.pt", run / "last.pt")  # last.pt alone serves as well
    html = write_report(run, images=0).read_text()
    for key in SECTIONS:
        assert f'<section id="{key}">' in html, key
    assert "no metrics.csv in the run folder" in html and "no per-class figures" in html
    assert "no validation images scored" in html and "no config.yaml" in html


def test_moved_data_is_said_not_raised(trained_run: Path, tmp_path: Path):
    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    state = load_checkpoint(run / "best.pt")
    state["config"] = {**state["config"], "data": str(tmp_path / "gone")}
    save_checkpoint(state, run / "best.pt")
    html = write_report(run, images=8).read_text()
    assert "the validation split could not be read again" in html and "gone" in html
    assert '<section id="curves">' in html and "confusion_matrix.csv" in html  # the files still reported


@pytest.mark.parametrize("task", ["segment", "instance"])
def test_the_truth_is_drawn_next_to_the_prediction(tmp_path: Path, task):
    """Untrained models on synthetic scenes: each worst image shows the task's picture of its prediction and of
    its truth (a mask in the task's palette; objects as the task draws them)."""
    run = tmp_path / "run"
    run.mkdir()
    state = load_checkpoint(write_checkpoint(tmp_path, task))
    state["config"] = {**state["config"], "data": "shapes:12", "val_split": 0.5, "max_size": 0}
    save_checkpoint(state, run / "best.pt")
    html = write_report(run, images=4, show=2, explain=1, device="cpu").read_text()
    assert html.count('<div class="item">') == 2
    items = html.split('<section id="worst">')[1].split("</section>")[0]
    assert items.count("<img") == 4 and "prediction: " in items and "truth" in items


def test_recognition_has_no_worst_images(tmp_path: Path):
    run = tmp_path / "run"
    run.mkdir()
    shutil.copy(write_checkpoint(tmp_path, "recognize"), run / "best.pt")
    html = write_report(run, images=8, device="cpu").read_text()
    assert "no single image can be called wrong" in html and '<div class="item">' not in html


def test_a_failed_report_warns_and_the_run_goes_on(tmp_path: Path, caplog):
    with caplog.at_level(logging.WARNING, logger="cnnkit"):
        assert report_after_training(tmp_path / "nowhere") is None
    assert "report.html not written" in caplog.text and "cnnkit report" in caplog.text


def test_metric_groups_chart_the_monitor_alone():
    columns = ["epoch", "train_loss", "train_img_s", "train_s", "box_ap", "box_ap50", "mask_ap", "mask_ap50",
               "val_img_s", "lr", "time_s"]
    groups = dict(metric_groups(columns, "mask_ap"))
    assert groups == {"losses": ["train_loss"], "mask_ap (monitored)": ["mask_ap"],
                      "box metrics": ["box_ap", "box_ap50"], "other metrics": ["mask_ap50"], "learning rate": ["lr"],
                      "speed (images/s)": ["train_img_s", "val_img_s"]}


def test_recognition_figures_are_tables_and_a_roc_curve(tmp_path: Path):
    (tmp_path / "verification.json").write_text('{"roc_auc": 0.91, "eer": 0.12, "pairs": {"same": 40}}')
    (tmp_path / "roc.csv").write_text("far,tar,threshold\n0,0.1,0.9\n0.01,0.5,0.6\n0.1,0.8,0.4\n1,1,0\n")
    body = results_section(tmp_path, has_classes=True).body
    assert "verification.json" in body and "roc_auc" in body and "pairs.same" in body
    assert 'alt="ROC curve (roc.csv)"' in body and body.count("<table>") == 2


def test_the_diagram_is_named_by_the_card_and_readable(trained_run: Path):
    html = (trained_run / "report.html").read_text()
    drawn = html.split('<section id="architecture">')[1].split("</section>")[0]
    assert "basic_cnn, input 3×24×24" in drawn and "BasicCNN" not in drawn  # the card's name, not the class's
    assert ".svg svg { display: block; max-width: none;" in html  # its own size, scrolled, not shrunk to the page


def test_explanations_show_the_image_beside_a_light_overlay(trained_run: Path):
    import numpy as np
    from PIL import Image

    from cnnkit.explain.core import Explanation, jet
    from cnnkit.report.worst import MAP_ALPHA

    html = (trained_run / "report.html").read_text()
    maps = html.split('<section id="explain">')[1].split("</section>")[0]
    assert maps.count('<div class="pair maps">') >= 1 and "Grad-CAM at" in maps
    first = maps.split('<div class="pair maps">')[1]
    assert first.index("<figcaption>#") < first.index("Grad-CAM at")  # the image first, then its maps
    image = Image.new("RGB", (8, 6), (200, 100, 50))
    heat = np.zeros((3, 4), np.float32)
    heat[1, 2] = 1.0
    drawn = np.asarray(Explanation(image, heat[None], ["x"], "gradcam", "").overlay(0, alpha=MAP_ALPHA),
                       np.float32)  # the report draws its maps lighter than the default
    assert drawn.shape == (6, 8, 3) and MAP_ALPHA < 0.5
    low = (1 - MAP_ALPHA) * np.array([200, 100, 50]) + MAP_ALPHA * jet(np.zeros(1))[0]
    assert np.abs(drawn[0, 0] - low).max() <= 2  # mostly the image


def test_truth_objects_are_labelled_without_a_score():
    import torch
    from PIL import Image

    from cnnkit.report.worst import truth_picture

    drawn: list[dict] = []
    model = SimpleNamespace(meta=SimpleNamespace(classes=["circle", "square"]),
                            task=SimpleNamespace(visualise=lambda pil, p, meta: drawn.append(p) or pil))
    target = {"boxes": torch.tensor([[1.0, 1.0, 5.0, 5.0]]), "labels": torch.tensor([2])}
    picture, said = truth_picture(model, Image.new("RGB", (8, 8)), target)  # type: ignore[arg-type]
    assert picture is not None and said == "truth: 1 object(s)"
    (obj,) = drawn[0]["instances"]
    assert obj["class"] == "square" and f"{obj['class']} {obj['score']:.2f}".strip() == "square"
    assert float(obj["score"]) == 1.0  # still a number where one is compared or sorted


def test_an_unwritable_run_folder_is_said_with_reports_own_argument(trained_run: Path, tmp_path: Path, capsys,
                                                                    monkeypatch):
    run = tmp_path / "run"
    shutil.copytree(trained_run, run)

    def refused(path, data):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr("cnnkit.report.build.atomic_write_bytes", refused)
    assert main(["report", str(run), "--images", "0"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(run / "report.html") in err and "Permission denied" in err
    assert "--out" not in err and "--project" not in err and "copy the run folder" in err

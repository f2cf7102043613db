"""``cnnkit segment``: an unlabelled folder and a few seeds -> a data set -> ``cnnkit train segment``."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from cnnkit.cli.main import main
from tests.grow.conftest import point_seeds, scene

NAMES = ("red", "blue", "green")
FAST = ["--side", "48", "--iterations", "40"]


def write_folder(root, count: int = 6):
    images, seeds = root / "images", root / "seeds"
    images.mkdir(parents=True)
    seeds.mkdir()
    for i in range(count):
        image, truth = scene(i)
        Image.fromarray(image).save(images / f"s{i}.png")
        ys, xs = np.nonzero(point_seeds(truth, 2, seed=i))
        rows = [f"{x},{y},{NAMES[truth[y, x]]}" for y, x in zip(ys, xs)]
        (seeds / f"s{i}.csv").write_text("x,y,class\n" + "\n".join(rows) + "\n")
    return images, seeds


def test_seeds_to_masks_to_a_trained_model(tmp_path, capsys) -> None:
    images, seeds = write_folder(tmp_path)
    out = tmp_path / "masks_made"
    assert main(["segment", str(images), "--seeds", str(seeds), "--classes", ",".join(NAMES), "--out", str(out),
                 *FAST]) == 0
    said = capsys.readouterr().out
    assert "seeded pixels kept" in said and f"cnnkit train segment --data {out}" in said
    mask = np.asarray(Image.open(out / "masks" / "s0.png"))
    _, truth = scene(0)
    known = mask != 255
    assert known.mean() > 0.5 and (mask[known] == truth[known]).mean() > 0.85
    assert main(["train", "segment", "--data", str(out), "--model", "unet_basic", "--epochs", "1", "--batch", "4",
                 "--imgsz", "32", "--project", str(tmp_path / "runs"), "--name", "g", "--no-verbose"]) == 0
    assert (tmp_path / "runs" / "segment" / "g" / "best.pt").exists()
    assert "red" in (tmp_path / "runs" / "segment" / "g" / "per_class.csv").read_text()


def test_without_seeds_one_image(tmp_path, capsys) -> None:
    image, _ = scene(1)
    Image.fromarray(image).save(tmp_path / "one.png")
    assert main(["segment", str(tmp_path / "one.png"), "--max-segments", "3", "--out", str(tmp_path / "o"), *FAST]) == 0
    assert "segments (" in capsys.readouterr().out
    assert (tmp_path / "o" / "confidence" / "one.png").exists()


@pytest.mark.parametrize("bad, message", [
    ("s9.csv", "no image named s9"),
    ("outside", "outside image"),
    ("classes", "not one of the 2 classes"),
])
def test_bad_seed_files_exit_2_in_one_line(tmp_path, capsys, bad: str, message: str) -> None:
    images, seeds = write_folder(tmp_path, 2)
    args = ["segment", str(images), "--seeds", str(seeds), "--out", str(tmp_path / "o"), *FAST]
    if bad == "s9.csv":
        (seeds / "s9.csv").write_text("x,y,class\n1,1,red\n")
    elif bad == "outside":
        (seeds / "s1.csv").write_text("x,y,class\n480,2,red\n")
    else:
        args += ["--classes", "red,blue"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "o").exists()


def test_an_output_folder_with_files_and_max_segments_with_seeds_are_refused(tmp_path, capsys) -> None:
    # regression (user trial): old masks stayed beside new ones and trained as one data set
    images, seeds = write_folder(tmp_path, 2)
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "old.png").write_bytes(b"")
    assert main(["segment", str(images), "--out", str(tmp_path / "used"), *FAST]) == 2
    assert "already holds files" in capsys.readouterr().err
    assert main(["segment", str(images), "--seeds", str(seeds), "--max-segments", "3", *FAST]) == 2
    assert "--max-segments is for segments found without seeds" in capsys.readouterr().err

"""Pixels as the user sees them: one scaling rule for a data set's 16-bit images, pages said, and
one walk rule for finding files."""

import logging
import os

import numpy as np
import pytest
from PIL import Image

from cnnkit.data.classify import load_classify_data
from cnnkit.data.images import iter_sources, open_image, pil_to_array, probe_high, read_image
from cnnkit.data.request import DataRequest
from cnnkit.data.walk import list_images
from tests.conftest import write_png


def gradient(peak: int) -> np.ndarray:
    return np.linspace(0, peak, 64).astype(np.uint16).reshape(8, 8)


def test_sixteen_bit_scale_is_one_rule_not_each_images_maximum(tmp_path):
    a = write_png(tmp_path / "a.png", gradient(250))
    b = write_png(tmp_path / "b.png", gradient(260))
    high = probe_high([a, b])
    assert high == 511  # the data's high value, rounded up to a whole bit depth
    top_a, top_b = read_image(a, 1, high=high).max(), read_image(b, 1, high=high).max()
    assert top_b > top_a and abs(int(top_b) - int(top_a) - 255 * 10 / 511) <= 1  # 260 is brighter than 250


def test_twelve_bit_sensor_data_uses_the_whole_8_bit_range(tmp_path):
    paths = [write_png(tmp_path / f"{i}.png", gradient(4095 - 100 * i)) for i in range(3)]
    high = probe_high(paths)
    assert high == 4095 and read_image(paths[0], 1, high=high).max() == 255
    assert len(np.unique(read_image(paths[0], 1, high=high))) > 50  # not 16 grey levels
    assert read_image(paths[0], 1).max() == 16  # without the data's value: the type's range, the same for all


def test_eight_bit_data_needs_no_scale(tmp_path):
    assert probe_high([write_png(tmp_path / "a.png", np.full((4, 4), 200, np.uint8))]) == 0.0
    assert pil_to_array(Image.fromarray(np.full((2, 2), 200, np.uint8)), 1).max() == 200


def test_sixteen_bit_classify_data_saves_its_high_value(tmp_path):
    for c in ("a", "b"):
        for i in range(3):
            write_png(tmp_path / "d" / c / f"{i}.png", gradient(3000 + 100 * i))
    data = load_classify_data(DataRequest(str(tmp_path / "d"), val_split=0.34, imgsz=8))
    assert data.high == 4095 and data.train.images.max() > 180


def test_multi_page_tiff_is_said(tmp_path, caplog):
    pages = [Image.fromarray(np.full((8, 8), v, np.uint8)) for v in (10, 20, 30)]
    pages[0].save(tmp_path / "scan.tif", save_all=True, append_images=pages[1:])
    with caplog.at_level(logging.WARNING, logger="cnnkit"):
        open_image(tmp_path / "scan.tif")
        open_image(tmp_path / "scan.tif")
    assert caplog.text.count("3 pages") == 1 and "only the first is read" in caplog.text


def test_one_walk_rule_hidden_case_links(tmp_path, caplog):
    folder = tmp_path / "imgs"
    write_png(folder / "a.JPG", np.zeros((4, 4, 3), np.uint8))
    write_png(folder / "sub" / "b.png", np.zeros((4, 4, 3), np.uint8))
    write_png(folder / ".hidden" / "c.png", np.zeros((4, 4, 3), np.uint8))
    write_png(folder / "._a.JPG", np.zeros((4, 4, 3), np.uint8))  # macOS AppleDouble file
    (folder / "notes.txt").write_text("x")
    outside = write_png(tmp_path / "elsewhere" / "d.png", np.zeros((4, 4, 3), np.uint8))
    os.symlink(outside.parent, folder / "linked")
    os.symlink(folder, folder / "sub" / "loop")  # a loop is walked once
    with caplog.at_level(logging.INFO, logger="cnnkit"):
        images, others = list_images(folder, recursive=True)
    assert [p.relative_to(folder).as_posix() for p in images] == ["a.JPG", "linked/d.png", "sub/b.png"]
    assert [p.name for p in others] == ["notes.txt"]
    assert "1 hidden folders" in caplog.text and "1 hidden files" in caplog.text
    assert iter_sources([str(folder)]) == images  # predict finds what training finds


@pytest.mark.parametrize("name", ["Thumbs.db", ".DS_Store"])
def test_system_files_do_not_stop_training(tmp_path, shapes_folder, name):
    (shapes_folder / "train" / "circle" / name).write_bytes(b"\0")
    data = load_classify_data(DataRequest(str(shapes_folder), imgsz=16))
    assert len(data.train) == 48


def test_arrays_of_every_common_kind_become_images_or_one_line_errors():
    """Regression: float and 16-bit arrays raised Pillow's raw TypeError from model.predict."""
    from cnnkit.data.images import as_pil
    from cnnkit.errors import CnnkitError

    assert as_pil(np.full((4, 4, 3), 0.5)).getpixel((0, 0)) == (128, 128, 128)
    assert as_pil(np.zeros((4, 4), np.uint16)).mode == "I;16" and as_pil(np.ones((4, 4), bool)).getpixel((0, 0)) == 255
    with pytest.raises(CnnkitError, match="values in 0..1"):
        as_pil(np.full((4, 4), 3.0))
    with pytest.raises(CnnkitError, match="pass"):
        as_pil(np.zeros((4, 4, 3), np.uint16))

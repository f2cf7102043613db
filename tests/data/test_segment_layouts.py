"""Segmentation data sets laid out as their publishers ship them: SegNet's CamVid, Kaggle's CamVid,
Cityscapes, ADE20K; found with no hand-made folders."""

import logging
from pathlib import Path

import numpy as np
import pytest

from cnnkit.data.masks import IGNORE
from cnnkit.data.request import DataRequest
from cnnkit.data.segment import load_segment_data
from cnnkit.errors import CnnkitError
from tests.conftest import write_png
from tests.data.test_segment_data import scenes


@pytest.fixture(autouse=True)
def _info_log(caplog):
    caplog.set_level(logging.INFO, logger="cnnkit")


def write_split(image_dir: Path, mask_dir: Path, n: int, seed: int, mask_name=lambda stem: f"{stem}.png") -> None:
    for i, (image, mask) in enumerate(scenes(n, seed=seed)):
        stem = f"{seed:04d}TP_{i:06d}"
        write_png(image_dir / f"{stem}.png", image)
        write_png(mask_dir / mask_name(stem), mask)


def test_segnet_camvid_layout(tmp_path: Path, caplog):
    for split, n, seed in (("train", 6, 1), ("val", 3, 2), ("test", 4, 3)):
        write_split(tmp_path / split, tmp_path / f"{split}annot", n, seed)
    (tmp_path / "train.txt").write_text("/SegNet/CamVid/train/0001TP_000000.png /SegNet/CamVid/trainannot/...\n")
    data = load_segment_data(DataRequest(str(tmp_path)))
    assert (len(data.train.images), len(data.val.images), len(data.test.images)) == (6, 3, 4)
    assert data.spec.names == ["class_0", "class_1", "class_2"]
    assert "found: segnet layout" in caplog.text and "test = test/ + testannot/ (4; scored once" in caplog.text


def test_kaggle_camvid_with_class_dict(tmp_path: Path):
    colours = [(0, 0, 0), (128, 0, 0), (0, 128, 0)]
    for split, seed in (("train", 1), ("val", 2)):
        for i, (image, mask) in enumerate(scenes(3, seed=seed)):
            write_png(tmp_path / split / f"{seed}_{i}.png", image)
            write_png(tmp_path / f"{split}_labels" / f"{seed}_{i}_L.png", np.array(colours, np.uint8)[mask])
    (tmp_path / "class_dict.csv").write_text("name,r,g,b\nVoid,0,0,0\nBuilding,128,0,0\nTree,0,128,0\n")
    data = load_segment_data(DataRequest(str(tmp_path)))
    assert data.spec.names == ["Void", "Building", "Tree"] and len(data.val.images) == 3
    assert set(np.unique(np.concatenate([m.ravel() for m in data.train.masks]))) <= {0, 1, 2}


def cityscapes(root: Path, kind: str = "labelIds") -> np.ndarray:
    """Two cities in train, one in val; label ids 7 (road), 26 (car), 0 (unlabeled), 4 (static)."""
    ids = np.zeros((24, 24), np.uint8)
    ids[:8], ids[8:16, :12], ids[16:] = 7, 26, 4
    for split, cities in (("train", ("aachen", "bremen")), ("val", ("lindau",)), ("test", ("berlin",))):
        for city in cities:
            for k in range(2):
                stem = f"{city}_{k:06d}_000019"
                write_png(root / "leftImg8bit" / split / city / f"{stem}_leftImg8bit.png",
                          np.full((24, 24, 3), 90, np.uint8))
                gt = root / "gtFine" / split / city
                write_png(gt / f"{stem}_gtFine_color.png", np.zeros((24, 24, 3), np.uint8))
                if kind == "labelIds":
                    write_png(gt / f"{stem}_gtFine_labelIds.png", ids)
                else:
                    train_ids = np.full_like(ids, 255)
                    train_ids[ids == 7], train_ids[ids == 26] = 0, 13
                    write_png(gt / f"{stem}_gtFine_labelTrainIds.png", train_ids)
    return ids


@pytest.mark.parametrize("kind", ["labelIds", "labelTrainIds"])
def test_cityscapes_layout_maps_label_ids_to_the_19_classes(tmp_path: Path, kind: str, caplog):
    cityscapes(tmp_path, kind)
    data = load_segment_data(DataRequest(str(tmp_path)))
    assert len(data.spec.names) == 19 and data.spec.names[0] == "road" and data.spec.names[13] == "car"
    assert (len(data.train.images), len(data.val.images), data.test) == (4, 2, None)  # test labels are placeholders
    mask = data.train.masks[0]
    assert (mask[:8] == 0).all() and (mask[8:16, :12] == 13).all()
    assert (mask[8:16, 12:] == IGNORE).all() and (mask[16:] == IGNORE).all()  # unlabeled and static: ignored
    assert f"gtFine_{kind}.png, 19 classes" in caplog.text


def test_ade20k_style_split_subfolders(tmp_path: Path):
    for split, seed in (("training", 1), ("validation", 2)):
        write_split(tmp_path / "images" / split, tmp_path / "annotations" / split, 3, seed)
    data = load_segment_data(DataRequest(str(tmp_path)))
    assert len(data.train.images) == 3 and len(data.val.images) == 3


def test_split_folder_without_images_and_masks_says_what_it_found(tmp_path: Path):
    (tmp_path / "train" / "photos").mkdir(parents=True)
    with pytest.raises(CnnkitError, match=r"train: expected images/ and masks/ folders inside \(found photos\)"):
        load_segment_data(DataRequest(str(tmp_path)))


def test_no_layout_says_what_it_saw(tmp_path: Path):
    (tmp_path / "pictures").mkdir()
    with pytest.raises(CnnkitError, match="no segmentation layout found .saw pictures/"):
        load_segment_data(DataRequest(str(tmp_path)))

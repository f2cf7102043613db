"""Segmentation loaders on fake files in each mask format, and the checks run before training."""

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cnnkit.data.masks import IGNORE, class_pixel_stats, class_weights, default_colours, mask_info
from cnnkit.data.request import DataRequest
from cnnkit.data.segment import load_segment_data, pad_collate
from cnnkit.data.synthetic import make_scene
from cnnkit.data.transforms import SegmentTransform
from cnnkit.errors import CnnkitError
from tests.conftest import SHARED, write_png

COLOURS = [(0, 0, 0), (200, 30, 30), (30, 200, 30)]


def scenes(n: int, size: int = 24, seed: int = 0):
    """Images and 3-class masks (0 background, 1 = circle/square, 2 = triangle/star)."""
    out = []
    for i in range(n):
        s = make_scene(i, seed, size)
        out.append((s.image, np.array([0, 1, 1, 2, 2], np.uint8)[s.semantic]))
    return out


def write_pairs(root: Path, n: int = 10, fmt: str = "index", mask_suffix: str = "", size: int = 24) -> Path:
    for i, (image, mask) in enumerate(scenes(n, size)):
        write_png(root / "images" / f"{i:03d}.jpg" if fmt == "index" else root / "images" / f"{i:03d}.png", image)
        path = root / "masks" / f"{i:03d}{mask_suffix}.png"
        if fmt == "index":
            write_png(path, mask)
        elif fmt == "palette":
            pal = Image.fromarray(mask, "P")
            pal.putpalette(np.array(default_colours(256), np.uint8).ravel().tolist())
            path.parent.mkdir(parents=True, exist_ok=True)
            pal.save(path)
        elif fmt == "rgb":
            write_png(path, np.array(COLOURS, np.uint8)[mask])
        elif fmt == "binary":
            write_png(path, np.where(mask > 0, 255, 0).astype(np.uint8))
        elif fmt == "16bit":
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(mask.astype(np.uint16) * 1000).save(path)
    return root


def write_classes(path: Path, rows) -> Path:
    path.write_text("index,name,r,g,b\n" + "".join(f"{i},{n},{r},{g},{b}\n" for i, n, (r, g, b) in rows))
    return path


def all_mask_values(data) -> set:
    return {int(v) for m in data.train.masks + data.val.masks for v in np.unique(m)}


def test_index_masks_with_val_split_and_suffix(tmp_path):
    root = write_pairs(tmp_path / "d", 10, "index", mask_suffix="_mask")
    data = load_segment_data(DataRequest(str(root), val_split=0.3, seed=1))
    assert len(data.train.images) == 7 and len(data.val.images) == 3
    assert data.spec.names == ["class_0", "class_1", "class_2"] and data.channels == 3
    assert all_mask_values(data) <= {0, 1, 2}
    assert data.train.images[0].shape == (24, 24, 3) and data.train.masks[0].dtype == np.uint8


def test_palette_masks_in_voc_layout(tmp_path):
    root = write_pairs(tmp_path / "VOCdevkit" / "VOC2012", 6, "palette")
    (root / "images").rename(root / "JPEGImages")
    (root / "masks").rename(root / "SegmentationClass")
    sets = root / "ImageSets" / "Segmentation"
    sets.mkdir(parents=True)
    (sets / "train.txt").write_text("000\n001\n002\n003\n")
    (sets / "val.txt").write_text("004\n005\n")
    data = load_segment_data(DataRequest(str(tmp_path)))
    assert data.spec.names[:3] == ["background", "aeroplane", "bicycle"] and len(data.spec.names) == 21
    assert len(data.train.images) == 4 and len(data.val.images) == 2
    assert all_mask_values(data) <= {0, 1, 2}


def test_rgb_masks_through_classes_file_and_ignored_colour(tmp_path):
    root = write_pairs(tmp_path / "d", 6, "rgb")
    write_classes(root / "classes.csv", [(0, "void", COLOURS[0]), (1, "round", COLOURS[1]), (2, "pointy", COLOURS[2])])
    data = load_segment_data(DataRequest(str(root), val_split=0.3), ignore_index=0)  # "void" is ignored
    assert data.spec.names == ["round", "pointy"]
    assert all_mask_values(data) <= {0, 1, IGNORE} and IGNORE in all_mask_values(data)


def test_rgb_colours_not_in_classes_file_are_named(tmp_path):
    root = write_pairs(tmp_path / "d", 4, "rgb")
    write_classes(root / "classes.csv", [(0, "void", COLOURS[0]), (1, "round", COLOURS[1])])
    with pytest.raises(CnnkitError, match=r"colours not in the classes file.*\(30,200,30\)"):
        load_segment_data(DataRequest(str(root), val_split=0.5))


def test_binary_masks(tmp_path):
    root = write_pairs(tmp_path / "d", 6, "binary")
    with pytest.raises(CnnkitError, match="binary masks.*--binary"):
        load_segment_data(DataRequest(str(root), val_split=0.3))
    data = load_segment_data(DataRequest(str(root), val_split=0.3), binary=True)
    assert data.spec.binary and data.spec.names == ["background", "foreground"]
    assert all_mask_values(data) == {0, 1}


def test_binary_masks_given_to_a_two_class_file_suggest_binary(tmp_path):
    root = write_pairs(tmp_path / "d", 4, "binary")
    write_classes(root / "classes.csv", [(0, "bg", (0, 0, 0)), (1, "cell", (255, 255, 255))])
    with pytest.raises(CnnkitError, match="Pass --binary"):
        load_segment_data(DataRequest(str(root), val_split=0.5), ignore_index=250)


def test_16bit_index_masks(tmp_path):
    root = write_pairs(tmp_path / "d", 4, "16bit")
    write_classes(root / "classes.csv", [(0, "bg", (0, 0, 0)), (1000, "a", (9, 9, 9)), (2000, "b", (7, 7, 7))])
    data = load_segment_data(DataRequest(str(root), val_split=0.5))
    assert data.spec.values == [0, 1000, 2000] and all_mask_values(data) <= {0, 1, 2}


def test_split_folders_with_ignored_index(tmp_path):
    for split in ("train", "val"):
        write_pairs(tmp_path / split, 3, "index")
        mask = np.asarray(Image.open(tmp_path / split / "masks" / "000.png")).copy()
        mask[:4] = 11
        write_png(tmp_path / split / "masks" / "000.png", mask)
    data = load_segment_data(DataRequest(str(tmp_path)), ignore_index=11)
    assert len(data.train.images) == 3 and len(data.val.images) == 3
    assert IGNORE in all_mask_values(data) and 11 not in all_mask_values(data)


def test_problems_are_named_before_training(tmp_path):
    root = write_pairs(tmp_path / "d", 6, "index")
    write_png(root / "masks" / "001.png", np.zeros((10, 10), np.uint8))  # wrong size
    write_png(root / "masks" / "002.png", np.full((24, 24), 7, np.uint8))  # outside classes 0..2 (with a file)
    write_classes(root / "classes.csv", [(0, "a", (0, 0, 0)), (1, "b", (1, 1, 1)), (2, "c", (2, 2, 2))])
    with pytest.raises(CnnkitError, match=r"2 image/mask problem\(s\).*001\.png: mask is 10x10 but its image is 24x24"):
        load_segment_data(DataRequest(str(root), val_split=0.3))
    data = load_segment_data(DataRequest(str(root), val_split=0.3, skip_bad=True))
    assert len(data.train.images) + len(data.val.images) == 4


def test_unreadable_files_are_listed_with_the_mask_problems_then_skipped(tmp_path, caplog):
    root = write_pairs(tmp_path / "d", 6, "index")
    (root / "images" / "000.jpg").write_bytes(b"not a jpeg")
    (root / "masks" / "004.png").write_bytes(b"not a png")
    write_png(root / "masks" / "001.png", np.zeros((10, 10), np.uint8))  # wrong size
    with pytest.raises(CnnkitError, match=r"3 image/mask problem\(s\)"):
        load_segment_data(DataRequest(str(root), val_split=0.3))
    assert "000.jpg: unreadable image" in caplog.text and "004.png: unreadable mask" in caplog.text
    caplog.clear()
    data = load_segment_data(DataRequest(str(root), val_split=0.3, skip_bad=True))
    assert len(data.train.images) + len(data.val.images) == 3
    warned = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warned) == 3 and all(w.endswith("; skipped") and "--skip-bad" not in w for w in warned)


def test_one_0_255_mask_among_0_1_masks_is_warned_of(tmp_path, caplog):
    root = write_pairs(tmp_path / "d", 6, "index")
    for i in range(6):  # binary masks, 0 and 1, but one saved as 0 and 255
        mask = np.asarray(Image.open(root / "masks" / f"{i:03d}.png")) > 0
        write_png(root / "masks" / f"{i:03d}.png", (mask * (255 if i == 2 else 1)).astype(np.uint8))
    load_segment_data(DataRequest(str(root), val_split=0.3))
    assert "002.png: values 0 and 255 where the other masks hold 0 and 1" in caplog.text
    assert "save it as 0/1, or pass --binary" in caplog.text
    caplog.clear()
    data = load_segment_data(DataRequest(str(root), val_split=0.3), binary=True)
    assert "values 0 and 255" not in caplog.text and all_mask_values(data) == {0, 1}


def test_unpaired_files_are_named(tmp_path):
    root = write_pairs(tmp_path / "d", 5, "index")
    (root / "masks" / "003.png").unlink()
    write_png(root / "masks" / "zzz.png", np.zeros((24, 24), np.uint8))
    with pytest.raises(CnnkitError, match=r"2 image/mask pairing problem\(s\).*003\.jpg: image has no mask"):
        load_segment_data(DataRequest(str(root), val_split=0.3))
    data = load_segment_data(DataRequest(str(root), val_split=0.3, skip_bad=True))
    assert len(data.train.images) + len(data.val.images) == 4


def test_max_size_scales_images_and_masks_nearest(tmp_path):
    root = write_pairs(tmp_path / "d", 4, "index", size=48)
    data = load_segment_data(DataRequest(str(root), val_split=0.5, max_size=24))
    assert data.train.images[0].shape == (24, 24, 3) and data.train.masks[0].shape == (24, 24)
    assert all_mask_values(data) <= {0, 1, 2}


def test_class_weights_median_frequency_and_inverse():
    masks = [np.array([[0, 0, 0, 1]]), np.array([[0, 0, 2, 2]])]
    spec = load_segment_spec(3)
    pixels, image_pixels = class_pixel_stats([mask_info(m) for m in masks], spec)
    assert pixels.tolist() == [5, 1, 2] and image_pixels.tolist() == [8, 4, 4]
    freq = np.array([5 / 8, 1 / 4, 2 / 4])
    assert np.allclose(class_weights("median", pixels, image_pixels), np.median(freq) / freq, atol=1e-5)
    assert np.allclose(class_weights("inverse", pixels, image_pixels), 8 / (3 * pixels), atol=1e-5)
    assert class_weights("1,2,3", pixels, image_pixels) == [1, 2, 3]
    with pytest.raises(CnnkitError, match="one per class"):
        class_weights("1,2", pixels, image_pixels)


def load_segment_spec(n: int):
    from cnnkit.data.masks import ClassSpec

    return ClassSpec([str(i) for i in range(n)], list(range(n)), default_colours(n))


def test_joint_transform_keeps_image_and_mask_aligned():
    torch.manual_seed(0)
    mask = torch.zeros(64, 64, dtype=torch.uint8)
    mask[:, 32:] = 1
    mask[40:, :] = 2
    image = (mask * 100).expand(3, -1, -1).clone()
    transform = SegmentTransform("light", (48, 40))  # zoom, crop and flip; no colour jitter
    for _ in range(10):
        out_image, out_mask = transform(image, mask)
        assert out_image.shape == (3, 48, 40) and out_mask.shape == (48, 40)
        assert set(out_mask.unique().tolist()) <= {0, 1, 2, IGNORE}  # nearest: no blended ids
        labelled = out_mask != IGNORE
        agree = (out_image[0][labelled].float() - out_mask[labelled].float() * 100).abs() < 50
        assert agree.float().mean() > 0.9  # all but the pixels at region borders, blended by the resize
    jittered, _ = SegmentTransform("standard", (48, 40))(image, mask)
    assert jittered.shape == (3, 48, 40) and jittered.dtype == torch.uint8


def test_pad_collate_pads_masks_with_ignore():
    a = (torch.zeros(3, 4, 5, dtype=torch.uint8), torch.zeros(4, 5, dtype=torch.uint8))
    b = (torch.zeros(3, 6, 3, dtype=torch.uint8), torch.ones(6, 3, dtype=torch.uint8))
    images, masks = pad_collate([a, b])
    assert images.shape == (2, 3, 6, 5) and masks.shape == (2, 6, 5) and masks.dtype == torch.int64
    assert (masks[0, 4:] == IGNORE).all() and (masks[1, :, 3:] == IGNORE).all()


def test_shapes_source():
    data = load_segment_data(DataRequest("shapes:8"))
    assert data.spec.names[0] == "background" and len(data.train.images) == 8 and len(data.val.images) == 4
    assert data.class_stats[0].sum() == 8 * 64 * 64


def test_camvid_as_it_is():
    root = SHARED / "camvid"
    if not root.is_dir():
        pytest.skip(f"real data not found at {root} (the ../shared/datasets folder beside the checkout)")
    data = load_segment_data(DataRequest(str(root), cache="none"), ignore_index=11)
    assert len(data.train.images) == 367 and len(data.val.images) == 101
    assert data.spec.names[0] == "Sky" and len(data.spec.names) == 11
    weights = class_weights("median", *data.class_stats)
    # median frequency balancing recomputed by hand from the mask files
    pixels, image_pixels = np.zeros(11), np.zeros(11)
    for path in sorted((root / "train" / "masks").iterdir()):
        counts = np.bincount(np.asarray(Image.open(path)).ravel(), minlength=12)[:11]
        pixels += counts
        image_pixels += np.where(counts > 0, counts.sum(), 0)
    freq = pixels / image_pixels
    assert np.allclose(weights, np.median(freq) / freq, rtol=1e-4)
    # SegNet's published weights agree within 20% for 10 of the 11 classes (SignSymbol: 9.64 there, 3.85 here)
    segnet = np.array([0.2595, 0.1826, 4.5640, 0.1417, 0.9051, 0.3826, 9.6446, 1.8418, 0.6823, 6.2478, 7.3614])
    assert (np.abs(np.array(weights) / segnet - 1) < 0.2).sum() == 10


def write_sideways_photo(path: Path, shown: np.ndarray) -> Path:
    """A JPEG as a phone writes it: pixels stored turned, and EXIF orientation 6 saying how to show them."""
    stored = np.rot90(shown, k=1)  # orientation 6: the viewer turns the stored pixels 90 degrees clockwise
    exif = Image.Exif()
    exif[0x0112] = 6
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.ascontiguousarray(stored)).save(path, quality=95, exif=exif)
    return path


def test_photos_are_read_as_viewers_show_them(tmp_path):
    """Regression: EXIF orientation was ignored, so a mask drawn on a phone photo as shown (48 wide,
    80 high) was refused as not matching its 80x48 image, and square ones trained on misaligned pairs."""
    from cnnkit.data.images import open_image, read_image

    shown = np.zeros((80, 48, 3), np.uint8)
    shown[:40] = 255  # the top half is white as the photo is shown
    photo = write_sideways_photo(tmp_path / "d" / "images" / "p0.jpg", shown)
    assert open_image(photo).size == (48, 80) and read_image(photo, 3).shape == (80, 48, 3)
    assert read_image(photo, 1)[:40].mean() > 200 and read_image(photo, 1)[40:].mean() < 50
    for i in range(1, 4):
        write_sideways_photo(tmp_path / "d" / "images" / f"p{i}.jpg", shown)
    for i in range(4):
        write_png(tmp_path / "d" / "masks" / f"p{i}.png", (shown[:, :, 0] > 127).astype(np.uint8))
    data = load_segment_data(DataRequest(str(tmp_path / "d"), val_split=0.25, seed=0))
    image, mask = data.train.images[0], data.train.masks[0]
    assert image.shape[:2] == mask.shape == (80, 48)
    assert (image[:, :, 0] > 127).mean() == pytest.approx((mask == 1).mean(), abs=0.02)  # aligned


def test_two_images_of_one_stem_are_named_not_dropped(tmp_path):
    """Regression: images/a.JPG and images/a.png, two pictures, became one pair with a.png's mask and
    the other was dropped without a word."""
    write_png(tmp_path / "d" / "images" / "a.png", np.zeros((8, 8, 3), np.uint8))
    Image.fromarray(np.full((8, 8, 3), 200, np.uint8)).save(tmp_path / "d" / "images" / "a.JPG")
    for stem in ("a", "b"):
        write_png(tmp_path / "d" / "masks" / f"{stem}.png", np.zeros((8, 8), np.uint8))
    write_png(tmp_path / "d" / "images" / "b.png", np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(CnnkitError, match=r"a\.JPG and .*a\.png: 2 files of one stem 'a'"):
        load_segment_data(DataRequest(str(tmp_path / "d"), val_split=0.5, seed=0))


def test_scoring_0_255_masks_with_a_model_whose_ignore_index_is_255_is_refused(tmp_path):
    """Regression: `cnnkit val` of a 3-class model on 0/255 masks printed mIoU 1.0000 and exited 0 (its
    foreground pixels were the ignore index: background alone was scored). Training refuses such masks."""
    from cnnkit.meta import ModelMeta

    for i in range(3):
        write_png(tmp_path / "images" / f"{i}.png", np.zeros((16, 16, 3), np.uint8))
        mask = np.zeros((16, 16), np.uint8)
        mask[4:9, 4:9] = 255
        write_png(tmp_path / "masks" / f"{i}.png", mask)
    card = ModelMeta.card(task="segment", model="m", classes=["a", "b", "c"], in_chans=3, mean=[0.5] * 3,
                          std=[0.2] * 3, extra={"values": [0, 1, 2], "ignore_index": 255})
    with pytest.raises(CnnkitError, match=r"hold only the values 0 and 255, and 255 is this model's ignore index"):
        load_segment_data(DataRequest(str(tmp_path), split="all", channels=3), meta=card)


def test_a_classes_file_with_the_shapes_is_refused():
    """Regression: `train segment --data shapes --classes-file /nonexistent.csv` trained, the flag unread."""
    with pytest.raises(CnnkitError, match="--classes-file x.csv: the shapes data set names its own classes"):
        load_segment_data(DataRequest("shapes:8"), classes_file="x.csv")

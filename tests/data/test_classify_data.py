"""Loaders on fake files in every layout and image mode, and the bad-input messages."""

import gzip
import logging
import struct

import numpy as np
import pytest
import torch

from cnnkit.data.classify import ClassifyDataset, load_classify_data, stratified_split
from cnnkit.data.request import DataRequest
from cnnkit.data.synthetic import SHAPE_NAMES
from cnnkit.data.transforms import BatchFlipTranslate, build_train_transform, channel_stats
from cnnkit.errors import CnnkitError
from tests.conftest import write_png


def test_image_folder_with_train_and_val(shapes_folder):
    data = load_classify_data(DataRequest(str(shapes_folder)))
    assert data.classes == sorted(p.name for p in (shapes_folder / "train").iterdir())
    assert data.channels == 3 and data.imgsz == 32
    assert data.train.images.shape == (48, 3, 32, 32) and data.train.images.dtype == torch.uint8
    assert len(data.val) == 16


def test_single_folder_split_is_stratified_and_fixed(shapes_folder):
    a = load_classify_data(DataRequest(str(shapes_folder / "train"), val_split=0.25, seed=3))
    b = load_classify_data(DataRequest(str(shapes_folder / "train"), val_split=0.25, seed=3))
    assert len(a.train) + len(a.val) == 48 and np.array_equal(a.val.labels, b.val.labels)
    counts = np.bincount(a.train.labels, minlength=4) + np.bincount(a.val.labels, minlength=4)
    val_counts = np.bincount(a.val.labels, minlength=4)
    assert np.all(np.abs(val_counts - counts * 0.25) <= 1)


def test_stratified_split_keeps_singletons_in_train():
    tr, va = stratified_split(np.array([0, 0, 0, 0, 1]), 0.5, seed=0)
    assert 4 in tr and len(va) == 2


def test_streaming_matches_cache(shapes_folder):
    cached = load_classify_data(DataRequest(str(shapes_folder), cache="ram"))
    streamed = load_classify_data(DataRequest(str(shapes_folder), cache="none"))
    assert streamed.train.images is None and len(streamed.train.paths) == 48
    ds_c, ds_s = ClassifyDataset(cached.train, 3, 32), ClassifyDataset(streamed.train, 3, 32)
    for i in (0, 7, 47):
        assert torch.equal(ds_c[i][0], ds_s[i][0]) and ds_c[i][1] == ds_s[i][1]


def test_image_modes_and_channel_inference(tmp_path):
    rng = np.random.default_rng(0)
    grey = tmp_path / "grey"
    write_png(grey / "a" / "l.png", rng.integers(0, 255, (20, 20), dtype=np.uint8))
    write_png(grey / "a" / "l2.png", rng.integers(0, 255, (20, 20), dtype=np.uint8))
    write_png(grey / "b" / "i16.png", (rng.integers(0, 65535, (20, 20))).astype(np.uint16))
    write_png(grey / "b" / "i16b.png", (rng.integers(0, 65535, (20, 20))).astype(np.uint16))
    data = load_classify_data(DataRequest(str(grey), val_split=0.5, imgsz=16))
    assert data.channels == 1 and data.train.images.shape[1:] == (1, 16, 16)
    colour = tmp_path / "colour"
    write_png(colour / "a" / "rgba.png", rng.integers(0, 255, (20, 20, 4), dtype=np.uint8))
    write_png(colour / "b" / "l.png", rng.integers(0, 255, (20, 20), dtype=np.uint8))
    from PIL import Image

    Image.fromarray(rng.integers(0, 255, (20, 20, 3), dtype=np.uint8)).convert("P").save(colour / "b" / "p.png")
    data = load_classify_data(DataRequest(str(colour), val_split=0.34))
    assert data.channels == 3 and data.imgsz == 20
    assert len(data.train) + len(data.val) == 3


def test_sixteen_bit_scales_to_eight(tmp_path):
    from cnnkit.data.images import read_image

    path = write_png(tmp_path / "x.png", np.full((4, 4), 65535, np.uint16))
    assert read_image(path, 1).max() == 255


def test_csv_with_names_and_ints(tmp_path, shapes_folder):
    files = sorted((shapes_folder / "train").rglob("*.png"))
    rows = [f"{f.relative_to(shapes_folder)},{f.parent.name}" for f in files]
    (shapes_folder / "labels.csv").write_text("path,label\n" + "\n".join(rows))
    data = load_classify_data(DataRequest(str(shapes_folder / "labels.csv"), val_split=0.25))
    assert len(data.train) + len(data.val) == 48 and len(data.classes) == 4
    (shapes_folder / "ints.csv").write_text("\n".join(f"{f.relative_to(shapes_folder)},{i % 3}"
                                                       for i, f in enumerate(files)))
    data = load_classify_data(DataRequest(str(shapes_folder / "ints.csv"), val_split=0.25))
    assert data.classes == ["0", "1", "2"]


def test_csv_label_out_of_range(tmp_path, shapes_folder):
    files = sorted((shapes_folder / "train").rglob("*.png"))[:4]
    (shapes_folder / "classes.txt").write_text("a\nb\n")
    rows = [f"{f.relative_to(shapes_folder)},{i}" for i, f in enumerate(files)]
    (shapes_folder / "bad.csv").write_text("\n".join(rows))
    with pytest.raises(CnnkitError, match=r"bad.csv: label '2' .* not one of the 2 classes"):
        load_classify_data(DataRequest(str(shapes_folder / "bad.csv")))


def _write_idx(path, array: np.ndarray):
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}i", *array.shape)
    path.write_bytes(gzip.compress(header + array.astype(np.uint8).tobytes()))


def test_idx_files(tmp_path):
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 30), ("t10k", 10)):
        _write_idx(tmp_path / f"{prefix}-images-idx3-ubyte.gz", rng.integers(0, 255, (n, 28, 28)))
        _write_idx(tmp_path / f"{prefix}-labels-idx1-ubyte.gz", np.arange(n) % 10)
    data = load_classify_data(DataRequest(str(tmp_path)))
    assert data.train.images.shape == (30, 1, 28, 28) and len(data.val) == 10 and data.classes[3] == "3"
    (tmp_path / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(b"\x00\x00\x08"))
    with pytest.raises(CnnkitError, match="t10k-labels-idx1-ubyte.gz: not an IDX file"):
        load_classify_data(DataRequest(str(tmp_path)))


def test_real_fashion_mnist(shared_fashion):
    data = load_classify_data(DataRequest(str(shared_fashion)))
    assert data.train.images.shape == (60000, 1, 28, 28) and len(data.val) == 10000
    assert data.classes[9] == "Ankle boot"


@pytest.mark.parametrize("problem, match", [
    ("missing", "not found; pass an existing folder"),
    ("empty_class", "class folder has no images"),
    ("no_classes", "no class folders"),
])
def test_bad_layouts(tmp_path, shapes_folder, problem, match):
    root = shapes_folder / "train"
    if problem == "missing":
        root = tmp_path / "nowhere"
    elif problem == "empty_class":
        (root / "empty").mkdir()
    elif problem == "no_classes":
        root = tmp_path / "flat"
        write_png(root / "x.png", np.zeros((4, 4), np.uint8))
    with pytest.raises(CnnkitError, match=match):
        load_classify_data(DataRequest(str(root), val_split=0.2))


def test_bad_images_all_listed_then_skipped(shapes_folder, caplog):
    folder = shapes_folder / "train" / "circle"
    (folder / "zero.png").write_bytes(b"")
    good = next(folder.glob("0*.png")).read_bytes()
    (folder / "truncated.png").write_bytes(good[: len(good) // 2])
    (folder / "garbage.jpg").write_bytes(b"this is not a jpeg at all")
    for cache in ("ram", "none"):
        caplog.clear()
        with pytest.raises(CnnkitError, match=r"3 unreadable image\(s\).*--skip-bad"):
            load_classify_data(DataRequest(str(shapes_folder), cache=cache))
        listed = caplog.text
        assert "zero.png" in listed and "truncated.png" in listed and "garbage.jpg" in listed
    data = load_classify_data(DataRequest(str(shapes_folder), skip_bad=True))
    assert len(data.train) == 48


def test_transforms_keep_uint8_and_shape():
    x = torch.randint(0, 255, (3, 32, 32), dtype=torch.uint8)
    for preset in ("standard", "strong"):
        y = build_train_transform(preset, 32, 3)(x)
        assert y.shape == x.shape and y.dtype == torch.uint8
    assert build_train_transform("none", 32, 3) is None and build_train_transform("light", 32, 3) is None
    grey = torch.randint(0, 255, (1, 28, 28), dtype=torch.uint8)
    assert build_train_transform("standard", 28, 1)(grey).shape == (1, 28, 28)


def test_batch_flip_translate():
    torch.manual_seed(0)
    x = torch.randint(0, 255, (64, 2, 12, 12), dtype=torch.uint8)
    flipped = BatchFlipTranslate(pad=0)(x)
    assert flipped.shape == x.shape and flipped.dtype == torch.uint8
    same = (flipped == x).flatten(1).all(1)
    mirrored = (flipped == x.flip(-1)).flatten(1).all(1)
    assert torch.all(same | mirrored) and 10 < int(mirrored.sum()) < 54
    moved = BatchFlipTranslate(pad=2, flip=False)(x)
    shifts = []
    for i in range(64):  # every output is the input shifted by at most 2 px (inner part matches)
        found = [(dy, dx) for dy in range(-2, 3) for dx in range(-2, 3)
                 if torch.equal(moved[i, :, 2:-2, 2:-2], x[i, :, 2 + dy:10 + dy, 2 + dx:10 + dx])]
        assert found
        shifts.append(found[0])
    assert len(set(shifts)) > 5


def test_channel_stats_match_torch():
    x = torch.randint(0, 255, (10, 3, 8, 8), dtype=torch.uint8)
    mean, std = channel_stats(x, chunk=3)
    f = x.double() / 255
    assert np.allclose(mean, f.mean((0, 2, 3)).numpy(), atol=1e-6)
    assert np.allclose(std, f.permute(1, 0, 2, 3).reshape(3, -1).std(1, unbiased=False).numpy(), atol=1e-5)


def test_a_class_only_val_holds_is_a_class_and_said(tmp_path, caplog):
    import logging
    import shutil

    from tests.conftest import write_image_folder

    root = write_image_folder(tmp_path / "d", {"train": (24, 0), "val": (16, 1)}, 16)
    shutil.rmtree(root / "train" / "circle")  # circles only in val/
    with caplog.at_level(logging.WARNING, logger="cnnkit"):
        data = load_classify_data(DataRequest(str(root), imgsz=16))
    assert "circle" in data.classes and "circle have no training images" in caplog.text


def test_a_flat_folder_says_what_it_saw(tmp_path):
    write_png(tmp_path / "a.png", np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(CnnkitError, match=r"no class folders \(saw 1 images and no folders\)"):
        load_classify_data(DataRequest(str(tmp_path)))


def test_one_class_is_refused_and_every_unreadable_file_listed(tmp_path, shapes_folder, caplog):
    write_png(tmp_path / "one" / "img" / "a.png", np.zeros((8, 8, 3), np.uint8))
    write_png(tmp_path / "one" / "img" / "b.png", np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(CnnkitError, match=r"one class \(img\) found; a classifier needs two"):
        load_classify_data(DataRequest(str(tmp_path / "one"), val_split=0.5))
    (shapes_folder / "train" / "circle" / "corrupt.png").write_bytes(b"\x89PNG broken")
    (shapes_folder / "val" / "star" / "zero.jpg").write_bytes(b"")
    with pytest.raises(CnnkitError, match="2 unreadable image"):  # in train and in val: both, not the first
        load_classify_data(DataRequest(str(shapes_folder)))
    assert "corrupt.png" in caplog.text and "zero.jpg" in caplog.text


def test_non_image_files_are_skipped_and_counted_as_by_data_check(shapes_folder, caplog):
    (shapes_folder / "train" / "circle" / "notes.txt").write_text("hi")
    (shapes_folder / "train" / "star" / "notes.txt").write_text("hi")
    with caplog.at_level(logging.INFO, logger="cnnkit"):
        data = load_classify_data(DataRequest(str(shapes_folder)))
    assert len(data.train) == 48 and "train: skipped 2 non-image files (.txt)" in caplog.text


def test_skip_bad_warnings_do_not_ask_for_skip_bad(shapes_folder, caplog):
    (shapes_folder / "train" / "circle" / "zero.png").write_bytes(b"")
    (shapes_folder / "train" / "circle" / "garbage.jpg").write_bytes(b"not a jpeg")
    for cache in ("ram", "none"):
        caplog.clear()
        load_classify_data(DataRequest(str(shapes_folder), cache=cache, skip_bad=True))
        warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
        assert len(warned) == 2 and all(w.endswith("; skipped") and "--skip-bad" not in w for w in warned)


def test_a_model_scored_on_other_classes_is_told_the_classes_differ(shapes_folder):
    with pytest.raises(CnnkitError, match=r"the data's classes \(circle, square, star, triangle\) differ from "
                                          r"the model's \(cat, dog\): circle, square, star, triangle not among"):
        load_classify_data(DataRequest(str(shapes_folder), split="auto"), classes=["cat", "dog"])
    data = load_classify_data(DataRequest(str(shapes_folder), split="auto"),
                              classes=["circle", "square", "star", "triangle"])
    assert len(data.val) == 16
    data = load_classify_data(DataRequest(str(shapes_folder), split="auto"), classes=[*SHAPE_NAMES, "hexagon"])
    assert len(data.val) == 16  # a subset of the model's classes is its data


def _sized_folder(root, sizes):
    rng = np.random.default_rng(0)
    for c in ("a", "b"):
        for i, (w, h) in enumerate(sizes):
            write_png(root / c / f"{i}.png", rng.integers(0, 255, (h, w, 3), dtype=np.uint8))
    return root


def test_images_of_one_small_non_square_size_train_at_their_own_size(tmp_path, caplog):
    """Regression: 72x64 images, all of one size, trained at 224 px "because images differ in size or are
    large"; the reason was false and the upscaling made training diverge."""
    with caplog.at_level("INFO", logger="cnnkit"):
        data = load_classify_data(DataRequest(str(_sized_folder(tmp_path, [(72, 64)] * 4)), val_split=0.5))
    assert data.imgsz == 72 and data.train.images.shape[-2:] == (72, 72)
    assert "72x64" in caplog.text and "differ" not in caplog.text and "224" not in caplog.text


@pytest.mark.parametrize("sizes, reason", [([(40, 40), (50, 30)] * 3, "differ in size (40x40, 50x30)"),
                                           ([(600, 520)] * 2, "600x520 px, larger than 512")])
def test_the_default_size_says_its_true_reason(tmp_path, caplog, sizes, reason):
    with caplog.at_level("INFO", logger="cnnkit"):
        data = load_classify_data(DataRequest(str(_sized_folder(tmp_path, sizes)), val_split=0.5, cache="none"))
    assert data.imgsz == 224 and reason in caplog.text


def test_arrays_too_large_for_memory_at_imgsz_are_refused(monkeypatch):
    """Regression: shapes data at --imgsz 100000 was resized in one allocation and killed by the kernel."""
    monkeypatch.setattr("cnnkit.device.available_memory", lambda device="cpu": 8 * 10**9)
    with pytest.raises(CnnkitError, match=r"--imgsz 100000: .* use --imgsz \d+ or less"):
        load_classify_data(DataRequest("shapes:8", imgsz=100000))


def test_images_beside_masks_are_not_two_classes(tmp_path):
    """Regression: `train classify --data <images/ + masks/>` learned pictures against masks (top-1 1.0, exit 0),
    while `val` refused the same folder."""
    from PIL import Image

    from cnnkit.data.classify import scan_image_folder
    from cnnkit.errors import CnnkitError

    for side in ("images", "masks"):
        (tmp_path / side).mkdir()
        Image.new("L", (8, 8)).save(tmp_path / side / "0.png")
    with pytest.raises(CnnkitError, match="images/ beside masks/ is a segmentation or instance layout"):
        scan_image_folder(tmp_path, skip_bad=False)

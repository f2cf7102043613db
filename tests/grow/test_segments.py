"""The API (``cnnkit.segment_image`` / ``segment_images``) and the data set it writes."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

import cnnkit
from cnnkit.errors import CnnkitError
from cnnkit.grow.segments import write_dataset
from tests.grow.conftest import point_seeds

FAST = {"side": 48, "iterations": 40, "batch": 4}


def test_segment_image_returns_a_result_with_mask_confidence_and_plot(scenes) -> None:
    image, truth = scenes[0]
    seeds = point_seeds(truth, 3)
    r = cnnkit.segment_image(image, seeds, classes=["red", "blue", "green"], **FAST)
    assert r.mask.shape == r.confidence.shape == truth.shape
    assert r.names == ["red", "blue", "green"] and r.task == "segment"
    assert (r.mask[seeds > 0] == seeds[seeds > 0] - 1).all()
    assert r.plot().size[0] >= image.shape[1]
    assert "segments" in repr(r) and r.to_dict()["seeded_pixels"] == int((seeds > 0).sum())


def test_without_seeds_the_segments_are_named_and_counted(scenes) -> None:
    results = cnnkit.segment_images([im for im, _ in scenes[:2]], max_segments=4, **FAST)
    names = results[0].names
    assert 2 <= len(names) <= 4 and names[0] == "segment1"
    assert all(r["segments"] <= len(names) for r in results)


@pytest.mark.parametrize("seeds, message", [
    (np.zeros((5, 5), np.int32), "image's size"),
    (np.zeros((48, 48), np.int32), "mark no pixel"),
    (np.full((48, 48), 9, np.int32), "only 3 classes"),
    (np.full((48, 48), -1, np.int32), "integers 0"),
])
def test_bad_seed_arrays_are_refused_in_one_line(scenes, seeds, message: str) -> None:
    with pytest.raises(CnnkitError, match=message) as e:
        cnnkit.segment_image(scenes[0][0], seeds, classes=["a", "b", "c"], **FAST)
    assert "\n" not in str(e.value)


def test_the_data_set_written_keeps_seeds_and_ignores_the_uncertain(tmp_path, scenes) -> None:
    paths = []
    for i, (image, _) in enumerate(scenes[:2]):
        paths.append(tmp_path / "in" / f"img{i}.png")
        paths[-1].parent.mkdir(exist_ok=True)
        Image.fromarray(image).save(paths[-1])
    seeds = [point_seeds(truth, 2, seed=i) for i, (_, truth) in enumerate(scenes[:2])]
    results = cnnkit.segment_images([str(p) for p in paths], seeds, classes="red,blue,green", **FAST)
    out = write_dataset(results, tmp_path / "out", min_confidence=0.9)
    mask = np.asarray(Image.open(out / "masks" / "img0.png"))
    assert (mask[seeds[0] > 0] == seeds[0][seeds[0] > 0] - 1).all()  # confidence 1 on seeds: never ignored
    uncertain = results[0].confidence < 0.9
    assert (mask[uncertain] == 255).all() and (mask[~uncertain] < 3).all()
    assert (out / "images" / "img0.png").read_bytes() == paths[0].read_bytes()
    assert (out / "classes.csv").read_text().splitlines()[1].startswith("0,red,")
    assert {p.name for p in (out / "overlays").iterdir()} == {"img0.png", "img1.png"}
    assert len((out / "segments.csv").read_text().splitlines()) == 3


def test_a_class_without_seeds_labels_no_pixel_and_is_warned(scenes, caplog) -> None:
    # regression (user trial): a class seeded nowhere took 7% to 81% of the image
    image, truth = scenes[0]
    seeds = point_seeds(truth, 3)
    seeds[seeds == 3] = 0
    r = cnnkit.segment_image(image, seeds, classes=["red", "blue", "green"], **FAST)
    assert not (r.mask == 2).any()
    assert "no seeds for green" in caplog.text


def test_a_16_bit_image_is_segmented_like_its_8_bit_self(scenes) -> None:
    # regression (user trial): a 16-bit picture was read as white, one segment
    image, _ = scenes[1]
    grey = image.mean(axis=2)
    r16 = cnnkit.segment_image((grey * 257).astype(np.uint16), max_segments=3, **FAST)
    assert r16["segments"] >= 2


def test_unsupervised_ids_are_compact_and_ordered_by_area(scenes) -> None:
    # regression (user trial): classes.csv listed 7 segments where the masks held one
    flat = np.full((40, 40, 3), 120, np.uint8)
    results = cnnkit.segment_images([flat, scenes[0][0]], max_segments=6, **FAST)
    used = np.unique(np.concatenate([r.mask.ravel() for r in results]))
    assert used.tolist() == list(range(len(results[0].names)))
    areas = np.bincount(np.concatenate([r.mask.ravel() for r in results]))
    assert (np.diff(areas) <= 0).all()


def test_a_list_of_seed_files_one_per_image(tmp_path, scenes) -> None:
    # regression (user trial): segment_images(..., seeds=[file, file]) raised "seed map 0 is ()"
    files = []
    for i, (_, truth) in enumerate(scenes[:2]):
        ys, xs = np.nonzero(point_seeds(truth, 2, seed=i))
        files.append(tmp_path / f"s{i}.csv")
        files[-1].write_text("x,y,class\n" + "".join(f"{x},{y},{'rbg'[truth[y, x]]}\n" for y, x in zip(ys, xs)))
    results = cnnkit.segment_images([im for im, _ in scenes[:2]], [str(f) for f in files], classes="r,b,g", **FAST)
    assert all(r["seeded_pixels"] == 6 for r in results)
    with pytest.raises(CnnkitError, match="pass classes"):
        cnnkit.segment_images([im for im, _ in scenes[:2]], [str(f) for f in files], **FAST)


def test_one_in_memory_image_with_a_seed_file(tmp_path, scenes) -> None:
    image, truth = scenes[2]
    ys, xs = np.nonzero(point_seeds(truth, 2))
    path = tmp_path / "clicks.csv"
    path.write_text("x,y,class\n" + "".join(f"{x},{y},{'rbg'[truth[y, x]]}\n" for y, x in zip(ys, xs)))
    r = cnnkit.segment_image(image, path, **FAST)
    assert r["seeded_pixels"] == 6 and set(r.names) == {"r", "b", "g"}


def test_the_colours_of_a_classes_file_are_kept(tmp_path, scenes) -> None:
    # regression (user trial): --classes classes.csv wrote cnnkit's palette, not the file's colours
    image, truth = scenes[0]
    path = tmp_path / "classes.csv"
    path.write_text("index,name,r,g,b\n0,red,250,0,0\n1,blue,0,0,250\n2,green,0,250,0\n")
    r = cnnkit.segment_image(image, point_seeds(truth, 2), classes=str(path), **FAST)
    assert [list(c) for c in r.meta.colours] == [[250, 0, 0], [0, 0, 250], [0, 250, 0]]
    out = write_dataset([r], tmp_path / "out", min_confidence=0.5)
    assert "0,red,250,0,0" in (out / "classes.csv").read_text()

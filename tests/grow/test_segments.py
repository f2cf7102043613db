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

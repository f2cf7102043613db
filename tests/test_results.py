"""Result objects: a prediction dict with the image, drawn, written, tabled and read by field."""

import json

import numpy as np
import pytest
from PIL import Image

import cnnkit
from cnnkit.data.rle import encode
from cnnkit.meta import ModelMeta
from cnnkit.results import Result
from cnnkit.tasks import get_view


def _meta(task: str, classes: list[str], **extra) -> ModelMeta:
    return ModelMeta.from_dict({"task": task, "model": "m", "classes": classes, "in_chans": 3, "mean": [0.5] * 3,
                                "std": [0.2] * 3, **extra})


def test_classify_results_from_a_trained_model(tmp_path, shapes_folder):
    run = cnnkit.train(data=str(shapes_folder), model="basic_cnn", imgsz=24, epochs=1, batch=16, verbose=False,
                       project=str(tmp_path))
    model = cnnkit.load(run.run_dir / "best.pt", device="cpu")
    path = sorted((shapes_folder / "val").rglob("*.png"))[0]
    result = model.predict(str(path), topk=2)[0]
    assert isinstance(result, Result) and isinstance(result, dict)  # a dict still, as the server and JSON have it
    assert result.probs.shape == (4,) and abs(float(result.probs.sum()) - 1) < 1e-4
    assert result.names[int(result.probs.argmax())] == result["class"] == result.labels[0]
    assert result.path == str(path) and str(path) in repr(result)
    record = json.loads(result.to_json())
    assert record["path"] == str(path) and "probs" not in record and len(record["topk"]) == 2
    picture = result.plot()
    assert isinstance(picture, Image.Image) and max(picture.size) >= 256
    files = result.save(tmp_path / "out")
    assert files == {"image": str(tmp_path / "out" / f"{path.stem}_pred.png")}
    assert Image.open(files["image"]).size == picture.size
    assert list(result.to_pandas()["class"]) == result.labels
    with pytest.raises(AttributeError, match="a classify result has no .mask. .its fields: labels, probs, scores"):
        _ = result.mask
    with pytest.raises(AttributeError, match="has no 'boxes'"):
        _ = result.boxes
    in_memory = model.predict(Image.open(path))[0]
    assert in_memory.path is None and "path" not in in_memory.to_dict() and in_memory["class"] == result["class"]

    done = cnnkit.val(run.run_dir / "best.pt", shapes_folder, split="val", verbose=False)
    assert 0 <= done.metrics["top1"] <= 1 and json.loads((done.out / "metrics.json").read_text()) == done.metrics


def test_segment_result_fields_and_files(tmp_path):
    meta = _meta("segment", ["road", "car"], colours=[[128, 64, 128], [64, 0, 128]], values=[0, 1],
                 ignore_index=255)
    mask = np.zeros((20, 30), np.uint8)
    mask[5:10, 5:25] = 1
    pred = {"mask": mask, "probs": None, "areas": {"road": 0.833, "car": 0.167}, "size": [30, 20]}
    result = Result(pred, Image.new("RGB", (30, 20)), get_view("segment"), meta, "street/a.png")
    assert result.mask is mask and result.plot().size == (256, 171)  # small images are enlarged for the legend
    with pytest.raises(AttributeError, match="this segment result holds no 'probs'"):  # as exported segmenters
        _ = result.probs
    files = result.save(tmp_path)
    assert np.array_equal(np.asarray(Image.open(files["mask"])), mask)
    assert result.to_dict() == {"path": "street/a.png", "size": [30, 20], "areas": pred["areas"]}
    assert result.to_pandas().to_dict("records") == [{"class": "road", "area": 0.833}, {"class": "car", "area": 0.167}]


def test_instance_result_boxes_masks_and_table(tmp_path):
    meta = _meta("instance", ["cell"])
    one = np.zeros((16, 24), np.uint8)
    one[2:6, 3:9] = 1
    instances = [{"class": "cell", "index": 0, "score": 0.9, "box": [3.0, 2.0, 9.0, 6.0], "rle": encode(one)},
                 {"class": "cell", "index": 0, "score": 0.6, "box": [10.0, 8.0, 14.0, 12.0], "rle": encode(one * 0)}]
    result = Result({"size": [24, 16], "instances": instances}, Image.new("RGB", (24, 16)), get_view("instance"), meta)
    assert result.boxes.shape == (2, 4) and result.boxes[0].tolist() == [3, 2, 9, 6]
    assert result.masks.shape == (2, 16, 24) and result.masks.dtype == bool and result.masks[0].sum() == 24
    assert result.scores.tolist() == pytest.approx([0.9, 0.6]) and result.labels == ["cell", "cell"]
    table = result.to_pandas()
    assert list(table.columns) == ["class", "score", "x0", "y0", "x1", "y1"] and len(table) == 2
    assert "2 cell" in repr(result)
    empty = Result({"size": [24, 16], "instances": []}, Image.new("RGB", (24, 16)), get_view("instance"), meta)
    assert empty.boxes.shape == (0, 4) and empty.masks.shape == (0, 16, 24) and len(empty.to_pandas()) == 0
    assert "instances" in result.save(tmp_path, stem="x")
    boxes = Result({"size": [24, 16], "instances": instances}, Image.new("RGB", (24, 16)), get_view("detect"),
                   _meta("detect", ["cell"]))
    assert boxes.boxes.shape == (2, 4)
    with pytest.raises(AttributeError, match="has no 'masks'"):  # regression: an empty (0, H, W) array, listed
        _ = boxes.masks


def test_the_package_shows_its_api():
    import cnnkit.export.runtime  # noqa: F401 - importing the export package once hid cnnkit.export()

    assert {"load", "train", "val", "export", "Result", "Model"} <= set(dir(cnnkit))
    assert "importlib" not in dir(cnnkit) and callable(cnnkit.export)


def test_empty_and_one_pixel_arrays(tmp_path):
    """Regression: a 0x0 array got a confident class; a 1x1 RGB array was squeezed to a vector and refused."""
    from cnnkit.data.images import as_pil
    from cnnkit.errors import CnnkitError

    with pytest.raises(CnnkitError, match="empty image array of shape .0, 0, 3."):
        as_pil(np.zeros((0, 0, 3), np.uint8))
    with pytest.raises(CnnkitError, match="empty image .0x4 pixels"):
        as_pil(Image.new("RGB", (0, 4)))
    assert as_pil(np.zeros((1, 1, 3), np.uint8)).size == (1, 1)
    assert as_pil(np.zeros((5, 7, 1), np.uint8)).size == (7, 5) and as_pil(np.zeros((1, 5, 7), np.uint8)).size == (7, 5)


def test_load_takes_a_run_folder(tmp_path):
    from cnnkit.errors import CnnkitError

    with pytest.raises(CnnkitError, match="a folder, not a model file"):
        cnnkit.load(tmp_path)


def test_fields_come_from_the_view():
    """Result's fields are the task view's (``View.fields``): a pretrain result has an embedding and nothing else;
    a view without fields (written before them) gives AttributeError and a one-row table."""
    meta = _meta("pretrain", ["none"])
    result = Result({"embedding": [0.5, 0.25]}, Image.new("RGB", (8, 8)), get_view("pretrain"), meta)
    assert result.embedding.dtype == np.float32 and result.embedding.tolist() == [0.5, 0.25]
    assert result.to_pandas()["embedding"].tolist() == [[0.5, 0.25]]
    with pytest.raises(AttributeError, match=r"a pretrain result has no 'boxes' \(its fields: embedding\)"):
        _ = result.boxes

    class OldView:
        name = "old"

        @staticmethod
        def record(prediction: dict) -> dict:
            return dict(prediction)

    old = Result({"value": 3}, Image.new("RGB", (8, 8)), OldView(), meta)  # type: ignore[arg-type]
    assert old.to_pandas().to_dict("records") == [{"value": 3}]
    with pytest.raises(AttributeError, match=r"has no 'mask' \(its fields: none\)"):
        _ = old.mask

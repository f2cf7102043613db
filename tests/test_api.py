import numpy as np
import pytest
import torch
from PIL import Image

import cnnkit
from cnnkit.errors import CnnkitError


def test_train_load_predict(tmp_path, shapes_folder):
    result = cnnkit.train(data=str(shapes_folder), model="basic_cnn", imgsz=24, epochs=1, batch=16, verbose=False,
                          project=str(tmp_path))
    model = cnnkit.load(result.run_dir / "best.pt", device="cpu")
    assert model.classes == ["circle", "square", "star", "triangle"]
    path = next((shapes_folder / "val").rglob("*.png"))
    image = Image.open(path)
    array = np.asarray(image)
    tensor = torch.from_numpy(array).permute(2, 0, 1)
    preds = model.predict([str(path), image, array, tensor], topk=3)
    assert len(preds) == 4 and all(len(p["topk"]) == 3 for p in preds)
    assert len({round(p["score"], 5) for p in preds}) == 1  # every input form gives the same answer
    single = model.predict(str(path))
    assert single[0]["class"] == preds[0]["class"]
    with pytest.raises(CnnkitError, match="a classify checkpoint, not segment"):
        cnnkit.load(result.run_dir / "best.pt", task="segment")


def test_create_model_is_exported():
    model = cnnkit.create_model("fastnet_small", num_classes=3, in_chans=1)
    assert model(torch.zeros(2, 1, 28, 28)).shape == (2, 3)
    assert "resnet18" in cnnkit.list_models()


def test_no_task_option_collides_with_the_image_batch():
    """Model.predict and `cnnkit predict --batch` take `batch` (images); a task's own option of that name
    would silently receive it (segment once took it for tiles, 32 at a time instead of 4)."""
    from cnnkit.options import option_infos
    from cnnkit.tasks import get_spec, task_names

    for name in task_names():
        assert "batch" not in [o.name for o in option_infos(get_spec(name).options)], name


def test_the_api_takes_a_train_config_and_refuses_other_types_in_one_line(tmp_path):
    """Regression: cnnkit.train(TrainConfig(...)) and cnnkit.load(5) raised TypeError from pathlib;
    TrainConfig(options={...}) was taken unchecked."""
    from cnnkit.config import TrainConfig, make_config
    from cnnkit.errors import CnnkitError

    cfg = make_config({"task": "classify", "data": "shapes:40", "model": "basic_cnn", "imgsz": 16, "epochs": 1,
                       "batch": 8, "project": str(tmp_path), "verbose": False})
    assert cnnkit.train(cfg).run_dir == tmp_path / "classify" / "exp"
    with pytest.raises(CnnkitError, match="must be a recipe file's path or a TrainConfig, got int"):
        cnnkit.train(5)
    with pytest.raises(CnnkitError, match="weights must be a path .* got int"):
        cnnkit.load(5)
    with pytest.raises(CnnkitError, match="segment's options are a SegmentTrainOptions, got dict"):
        TrainConfig(task="segment", options={"bogus": 1})
    assert TrainConfig(task="segment").options.ignore_index == 255

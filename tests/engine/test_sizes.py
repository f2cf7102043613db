"""The training size against the model's downsampling and the machine's memory, before training."""

import numpy as np
import pytest
import torch

import cnnkit
from cnnkit.config import make_config
from cnnkit.engine import sizes
from cnnkit.engine.sizes import SmallerThanStride, check_input_size, check_memory
from cnnkit.errors import CnnkitError
from cnnkit.models.wrapper import build_image_model
from tests.conftest import write_png

CPU = torch.device("cpu")


def model_and_meta(name: str, side: int):
    meta = {"task": "classify", "model": name, "classes": ["a", "b"], "num_classes": 2, "in_chans": 3,
            "mean": [0.5] * 3, "std": [0.25] * 3, "imgsz": side}
    return build_image_model(meta), meta


@pytest.mark.parametrize("name, stride", [("resnet18", 32), ("fastnet_tiny", 8), ("deeplabv3plus_basic", 16)])
def test_total_stride(name, stride):
    model, _ = model_and_meta(name, 64)
    assert model.total_stride() == stride


def test_a_size_below_the_total_stride_is_refused_naming_the_minimum():
    """Regression: --imgsz 2 --model resnet18 trained 10 epochs on 1-pixel features."""
    model, meta = model_and_meta("resnet18", 2)
    with pytest.raises(SmallerThanStride, match=r"--imgsz 2: below half of resnet18's total stride of 32 px.*32"):
        check_input_size(model, make_config(model="resnet18", imgsz=2), meta, 8, CPU)


def test_a_batch_larger_than_memory_is_refused_naming_a_size_that_fits(monkeypatch):
    """Regression: --imgsz 100000 was killed by the kernel (exit 137) without a word."""
    monkeypatch.setattr(sizes, "available_memory", lambda device: 4 * 10**9)
    model, meta = model_and_meta("resnet18", 100000)
    cfg = make_config(model="resnet18", imgsz=100000)
    with pytest.raises(CnnkitError, match=r"^--imgsz 100000: .* 4\.0 GB available; use --imgsz (\d+) or less") as e:
        check_memory(model, cfg, meta, 16, CPU, 32)
    fits = int(str(e.value).split("use --imgsz ")[1].split()[0])
    assert fits % 32 == 0 and 32 <= fits < 1000
    check_memory(model, cfg, {**meta, "imgsz": fits}, 16, CPU, 32)  # the size it names fits
    with pytest.raises(CnnkitError, match=f"--imgsz {fits + 256}"):
        check_memory(model, cfg, {**meta, "imgsz": fits + 256}, 16, CPU, 32)


def test_images_smaller_than_the_stride_train_at_the_nearest_size_the_model_takes(tmp_path, caplog):
    rng = np.random.default_rng(0)
    for c in ("a", "b"):
        for i in range(4):
            write_png(tmp_path / "data" / c / f"{i}.png", rng.integers(0, 255, (12, 12, 3), dtype=np.uint8))
    with caplog.at_level("INFO", logger="cnnkit"):
        result = cnnkit.train(task="classify", data=str(tmp_path / "data"), model="resnet18", epochs=1, batch=4,
                              val_split=0.5, project=str(tmp_path / "runs"), verbose=False)
    assert "images are 12 px, below resnet18's total stride; training at 32 px" in caplog.text
    assert cnnkit.load(result.run_dir / "best.pt").meta.imgsz == 32


def test_a_size_no_model_could_train_is_refused_before_the_data_is_read(monkeypatch, tmp_path):
    """The data is read at --imgsz (decoded, resized, sampled for statistics) before the model exists:
    --imgsz 100000 was killed there. Nothing is read: the data folder does not even exist."""
    monkeypatch.setattr(sizes, "available_memory", lambda device: 16 * 10**9)
    with pytest.raises(CnnkitError, match=r"^--imgsz 100000: .* 16\.0 GB available; use --imgsz \d+ or less"):
        cnnkit.train(task="classify", data=str(tmp_path / "absent"), model="resnet18", imgsz=100000,
                     project=str(tmp_path / "runs"), verbose=False)


def test_a_detectors_fixed_region_heads_are_counted_per_image_not_per_pixel(monkeypatch):
    """Regression: `cnnkit train instance --data shapes` (512 px, batch 4) was refused as needing 110.7 GB,
    the region heads' outputs on a 64 px probe (1000 proposals whatever the size) counted per pixel."""
    monkeypatch.setattr(sizes, "available_memory", lambda device: 22 * 10**9)
    meta = {"task": "instance", "model": "maskrcnn_resnet18", "classes": ["a", "b"], "num_classes": 2,
            "in_chans": 3, "mean": [0.5] * 3, "std": [0.25] * 3, "imgsz": 512}
    model = build_image_model(meta)
    per_pixel, per_image = sizes.pixel_bytes(model, 3, 32)
    assert per_image > 50e6 and per_pixel < 10_000  # the heads: about 400 MB an image; the trunk: kB a pixel
    check_memory(model, make_config(model="maskrcnn_resnet18", imgsz=512), meta, 4, CPU, 32)

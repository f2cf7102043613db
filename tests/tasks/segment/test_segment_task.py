"""Segmentation losses, sliding-window inference and the per-image outputs."""

import numpy as np
import pytest
import torch
from PIL import Image

from cnnkit.data.masks import IGNORE
from cnnkit.meta import ModelMeta
from cnnkit.models import create_model
from cnnkit.models.wrapper import ImageModel
from cnnkit.tasks import get_task
from cnnkit.tasks.common import tile_starts
from cnnkit.tasks.segment import SegmentOptions
from cnnkit.tasks.segment.draw import write_segment_outputs
from cnnkit.tasks.segment.infer import choose_mode, predict_slide, predict_whole
from cnnkit.tasks.segment.losses import SegmentationLoss, dice_loss

META = {"task": "segment", "model": "unet_basic", "classes": ["background", "a", "b"], "values": [0, 1, 2],
        "ignore_index": 255,
        "colours": [[0, 0, 0], [255, 0, 0], [0, 255, 0]], "binary": False, "num_classes": 3, "in_chans": 3,
        "mean": [0.5] * 3, "std": [0.25] * 3, "crop": [32, 32], "imgsz": 32, "max_size": 0}


def tiny_model(meta=META, outputs=3) -> ImageModel:
    torch.manual_seed(0)
    net = create_model("unet_basic", num_classes=outputs, widths=(8, 8, 16, 16, 16), decoder_channels=(16, 16, 8, 8, 8))
    return ImageModel(net, meta).eval()


def test_cross_entropy_ignores_pixels_and_weights_classes():
    logits = torch.randn(2, 3, 4, 4)
    target = torch.randint(0, 3, (2, 4, 4))
    noisy = target.clone()
    noisy[:, 0] = IGNORE
    plain = SegmentationLoss("ce")(logits, noisy)
    keep = noisy != IGNORE
    expected = torch.nn.functional.cross_entropy(logits.permute(0, 2, 3, 1)[keep], noisy[keep])
    assert plain == pytest.approx(float(expected), rel=1e-5)
    weighted = SegmentationLoss("ce", [1.0, 0.0, 0.0])(logits, target)
    only_0 = torch.nn.functional.cross_entropy(logits.permute(0, 2, 3, 1)[target == 0], target[target == 0])
    assert weighted == pytest.approx(float(only_0), rel=1e-5)


def test_dice_focal_and_binary_losses():
    target = torch.randint(0, 3, (2, 8, 8))
    perfect = torch.nn.functional.one_hot(target, 3).permute(0, 3, 1, 2).float() * 50
    assert dice_loss(perfect, target) < 1e-3
    assert dice_loss(-perfect, target) > 0.9
    logits = torch.randn(2, 3, 8, 8)
    assert SegmentationLoss("focal")(logits, target) < SegmentationLoss("ce")(logits, target)
    both = SegmentationLoss("ce+dice")(logits, target)
    assert both == pytest.approx(float(SegmentationLoss("ce")(logits, target) + dice_loss(logits, target)), rel=1e-5)
    binary_target = torch.randint(0, 2, (2, 8, 8))
    binary_target[0, 0] = IGNORE
    for kind in ("ce", "dice", "focal", "ce+dice"):
        loss = SegmentationLoss(kind, [1.0, 3.0])(torch.randn(2, 1, 8, 8, requires_grad=True), binary_target)
        assert torch.isfinite(loss)
        loss.backward()


def test_tile_starts_cover_the_image():
    assert tile_starts(10, 32, 24) == [0]
    assert tile_starts(100, 32, 24) == [0, 24, 48, 68]


def test_slide_equals_whole_when_one_tile_covers_the_image():
    model = tiny_model()
    image = torch.randint(0, 256, (3, 40, 52), dtype=torch.uint8)
    whole_ids, whole_probs = predict_whole(model, image, want_probs=True)
    slide_ids, slide_probs = predict_slide(model, image, (64, 64), want_probs=True)
    assert np.array_equal(whole_ids, slide_ids)
    assert np.allclose(whole_probs.astype(np.float32), slide_probs.astype(np.float32), atol=1e-3)
    tta_whole, _ = predict_whole(model, image, tta=True)
    tta_slide, _ = predict_slide(model, image, (64, 64), tta=True)
    assert np.array_equal(tta_whole, tta_slide)


def test_slide_with_many_tiles_agrees_with_whole_and_bounds_its_buffer(monkeypatch):
    model = tiny_model()
    image = torch.randint(0, 256, (3, 150, 230), dtype=torch.uint8)
    image = torch.nn.functional.avg_pool2d(image[None].float(), 9, 1, 4)[0].to(torch.uint8)  # smooth regions
    rows_seen = []
    import cnnkit.tasks.segment.infer as seg_infer

    original = seg_infer._grow

    def spy(buffer, channels, rows, width):
        rows_seen.append(rows)
        return original(buffer, channels, rows, width)

    monkeypatch.setattr(seg_infer, "_grow", spy)
    ids, probs = predict_slide(model, image, (64, 64), overlap=0.25, batch=3, want_probs=True)
    whole, _ = predict_whole(model, image)
    assert ids.shape == (150, 230) and probs.shape == (3, 150, 230)
    assert max(rows_seen) <= 2 * 64  # the buffer holds at most two bands of rows, whatever the height
    assert (ids == whole).mean() > 0.8


def test_auto_mode_slides_only_for_large_images():
    assert choose_mode("auto", (64, 64), (32, 32)) == "whole"
    assert choose_mode("auto", (1000, 1000), (32, 32)) == "slide"


def test_predict_returns_masks_at_the_original_size_and_writes_outputs(tmp_path):
    model = tiny_model({**META, "max_size": 32})
    image = Image.fromarray(np.random.default_rng(0).integers(0, 255, (50, 70, 3), dtype=np.uint8))
    pred = get_task("segment").predict(model, [image], SegmentOptions(tta=True, probs=True))[0]
    assert pred["mask"].shape == (50, 70) and pred["size"] == [70, 50]
    assert pytest.approx(sum(pred["areas"].values()), abs=1e-4) == 1.0
    files = write_segment_outputs(image, pred, model.meta, tmp_path, "x")
    assert sorted(files) == ["color", "mask", "overlay", "probs"]
    mask_png = Image.open(files["mask"])
    assert mask_png.mode == "P" and np.array_equal(np.asarray(mask_png), pred["mask"])
    assert Image.open(files["color"]).size == (70, 50)


def test_index_masks_are_written_in_the_data_sets_own_values(tmp_path):
    meta = {**META, "values": [3, 7, 9]}
    pred = {"mask": np.array([[0, 1], [2, IGNORE]], np.uint8), "probs": None}
    files = write_segment_outputs(Image.new("RGB", (2, 2)), pred, ModelMeta.from_dict({**meta, "ignore_index": 11}),
                                  tmp_path, "v", pictures=False)
    assert sorted(files) == ["mask"]
    assert np.asarray(Image.open(files["mask"])).tolist() == [[3, 7], [9, 11]]
    binary = write_segment_outputs(Image.new("RGB", (2, 2)), {"mask": np.array([[0, 1]], np.uint8)},
                                   ModelMeta.from_dict({**META, "binary": True}), tmp_path, "b", pictures=False)
    assert np.asarray(Image.open(binary["mask"])).tolist() == [[0, 255]]


SEG_TINY = dict(task="segment", data="shapes:160", model="unet_basic", max_size=32, epochs=2, batch=8, lr=0.05,
                model_args={"widths": [8, 16, 16, 32, 32], "decoder_channels": [32, 16, 16, 8, 8]}, verbose=False)


def test_learns_the_shapes_masks(tmp_path):
    import cnnkit

    result = cnnkit.train(**{**SEG_TINY, "data": "shapes:600", "epochs": 6, "batch": 16, "lr": 0.1,
                             "loss": "ce+dice"}, project=str(tmp_path))
    # background everywhere gives pixel accuracy 0.83 and mIoU 0.17; telling the four kinds apart takes
    # the demo's longer run (mIoU about 0.6), finding the shapes does not
    assert result.best["pixel_acc"] > 0.86 and result.best["miou"] > 0.22


def test_segment_resume_keeps_the_meta(tmp_path):
    import cnnkit
    from cnnkit.api import train_with
    from cnnkit.config import make_config
    from cnnkit.engine.checkpoint import load_checkpoint

    def interrupt(epoch, row):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_with(make_config(dict(SEG_TINY, project=str(tmp_path), name="r")), on_epoch_end=interrupt)
    resumed = cnnkit.train(**SEG_TINY, project=str(tmp_path), name="r", resume=True)
    assert resumed.epochs_run == 2
    meta = load_checkpoint(resumed.run_dir / "best.pt")["meta"]
    assert meta.classes[0] == "background" and meta.crop == (32, 32) and meta.task == "segment"


def test_binary_training_and_prediction(tmp_path):
    import cnnkit
    from tests.data.test_segment_data import write_pairs

    data = write_pairs(tmp_path / "cells", 8, "binary", size=32)
    result = cnnkit.train(**{**SEG_TINY, "data": str(data), "binary": True, "val_split": 0.25,
                             "class_weights": "inverse", "loss": "focal"}, project=str(tmp_path))
    model = cnnkit.load(result.run_dir / "best.pt")
    assert model.meta.value("binary", False) and model.meta.num_outputs == 1
    assert len(model.meta.value("class_weights", [])) == 2
    pred = model.predict(str(data / "images" / "000.png"), probs=True)[0]
    assert pred["mask"].shape == (32, 32) and set(np.unique(pred["mask"])) <= {0, 1}
    assert pred["probs"].shape == (1, 32, 32)

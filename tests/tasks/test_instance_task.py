"""Instance task: tiles merged across borders, a tiny model that overfits shapes, predictions and files."""

from pathlib import Path

import numpy as np
import pytest
import torch

from cnnkit.tasks.inst_infer import Detection, merge_tiles, tile_starts


def det(mask_full: np.ndarray, rect: tuple[int, int, int, int], tile: int, score: float = 0.9, label: int = 1):
    """The part of a full-image mask that a tile sees, as that tile's detection."""
    y0, x0, y1, x1 = rect
    part = np.zeros_like(mask_full)
    part[y0:y1, x0:x1] = mask_full[y0:y1, x0:x1]
    ys, xs = np.nonzero(part)
    top, left = ys.min(), xs.min()
    local = part[top:ys.max() + 1, left:xs.max() + 1]
    box = np.array([left, top, xs.max() + 1, ys.max() + 1], np.float32)
    return Detection(box, label, score, local, int(top), int(left), tile)


def test_objects_cut_by_tile_borders_are_merged():
    rects = [(0, 0, 64, 64), (0, 48, 64, 112)]  # 16 px overlap in x
    big = np.zeros((64, 112), bool)
    big[10:30, 40:80] = True  # crosses both tiles' borders
    small = np.zeros((64, 112), bool)
    small[40:46, 50:58] = True  # inside the overlap: seen whole by both tiles
    neighbour = np.zeros((64, 112), bool)
    neighbour[31:38, 40:80] = True  # touches the big one, another object
    dets = [det(big, rects[0], 0), det(big, rects[1], 1, 0.8), det(small, rects[0], 0), det(small, rects[1], 1, 0.7),
            det(neighbour, rects[0], 0), det(neighbour, rects[1], 1)]
    merged = merge_tiles(dets, rects)
    assert len(merged) == 3
    masks = sorted((d.mask_in((0, 0, 64, 112)) for d in merged), key=lambda m: -m.sum())
    for got, want in zip(masks, (big, neighbour, small)):
        np.testing.assert_array_equal(got, want)
    assert max(d.score for d in merged) == 0.9


def test_different_classes_are_not_merged_and_tiles_cover_the_image():
    rects = [(0, 0, 64, 64), (0, 48, 64, 112)]
    obj = np.zeros((64, 112), bool)
    obj[10:20, 50:60] = True
    assert len(merge_tiles([det(obj, rects[0], 0, label=1), det(obj, rects[1], 1, label=2)], rects)) == 2
    starts = tile_starts(300, 128, 96)
    assert starts[0] == 0 and starts[-1] == 300 - 128 and all(b - a <= 96 for a, b in zip(starts, starts[1:]))


@pytest.mark.slow
def test_tiny_model_overfits_a_few_shapes(tmp_path: Path):
    """Eight synthetic images, trained on and evaluated on: mask AP50 must get high."""
    from torch.utils.data import DataLoader

    from cnnkit.api import Model
    from cnnkit.config import make_config
    from cnnkit.data.instance import InstanceDataset, list_collate
    from cnnkit.data.instance_data import synthetic_items
    from cnnkit.engine.loop import evaluate, train_one_epoch
    from cnnkit.tasks import get_task

    torch.manual_seed(0)
    task = get_task("instance")
    cfg = make_config({"task": "instance", "data": "shapes:8", "model": "maskrcnn_resnet18", "imgsz": 96,
                       "augment": "none", "model_args": {"fpn_channels": 32, "mask_channels": 32, "detections": 20,
                                                         "anchor_sizes": [8, 16, 32, 64, 128]}})
    data = task.build_data(cfg)
    model = task.build_model(cfg, data.meta)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.02, momentum=0.9)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: min(1.0, (step + 1) / 20))
    loader = DataLoader(data.train, batch_size=4, shuffle=True, collate_fn=list_collate)
    for _ in range(100):  # 200 steps
        train_one_epoch(model, loader, task.build_loss(cfg, data), optimizer, schedule, device=torch.device("cpu"),
                        scaler=torch.amp.GradScaler("cpu", enabled=False), grad_clip=10.0,
                        forward=data.train_forward)
    items = synthetic_items(8, 0)
    same = DataLoader(InstanceDataset(items, 3), batch_size=4, collate_fn=list_collate)
    metrics = task.build_metrics(data.meta, torch.device("cpu"))
    results = evaluate(model, same, metrics, device=torch.device("cpu"))
    assert results["mask_ap50"] >= 0.8, results

    wrapped = Model(model.eval(), {"task": "instance"}, torch.device("cpu"))
    pred = wrapped.predict([items[0].image], score_thresh=0.3)[0]
    assert pred["instances"] and {"class", "score", "box", "rle"} <= set(pred["instances"][0])
    files = task.write_outputs(wrapped.to_pil(items[0].image), pred, model.meta, tmp_path, "x")
    assert Path(files["overlay"]).is_file() and Path(files["instances"]).is_file()
    tiled = wrapped.predict([items[0].image], score_thresh=0.3, tile=64, overlap=0.5)[0]
    assert abs(len(tiled["instances"]) - len(pred["instances"])) <= 2

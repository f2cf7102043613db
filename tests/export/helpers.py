"""Checkpoints of untrained models for every task, written directly (no training): export and serving
tests need a model's shapes and metadata, not its accuracy."""

from __future__ import annotations

from pathlib import Path

import torch

from cnnkit import __version__
from cnnkit.engine.checkpoint import save_checkpoint
from cnnkit.models.wrapper import build_image_model

SHAPES = ["circle", "square", "triangle", "star"]
STATS = {"mean": [0.4, 0.4, 0.4], "std": [0.17, 0.17, 0.17]}
META = {
    "classify": {"task": "classify", "classes": SHAPES, "num_classes": 4, "in_chans": 3, "imgsz": 32,
                 "model": "fastnet_small", "model_args": {},
                 "inputs": {"images": 10, "side_range": [32, 96], "colour_share": 1.0, "high_bit_share": 0.0,
                            "brightness_range": [0.0, 1.0]}},
    "segment": {"task": "segment", "classes": ["background", *SHAPES], "values": [0, 1, 2, 3, 4],
                "colours": [[0, 0, 0], [128, 0, 0], [0, 128, 0], [128, 128, 0], [0, 0, 128]], "ignore_index": 255,
                "binary": False, "num_classes": 5, "num_outputs": 5, "in_chans": 3, "imgsz": 64, "crop": [64, 64],
                "max_size": 0, "model": "unet_basic", "model_args": {}},
    "instance": {"task": "instance", "classes": SHAPES, "num_classes": 4, "in_chans": 3, "imgsz": 96,
                 "crop": [96, 96], "max_size": 0, "detections": 20, "model": "maskrcnn_resnet18",
                 "model_args": {"detections": 20, "fpn_channels": 32, "mask_channels": 16}},
    "recognize": {"task": "recognize", "classes": SHAPES, "num_classes": 4, "in_chans": 3, "imgsz": 32,
                  "model": "embedder", "model_args": {"backbone": "fastnet_small", "dim": 16}},
    "detect": {"task": "detect", "classes": SHAPES, "num_classes": 4, "in_chans": 3, "imgsz": 96,
               "crop": [96, 96], "max_size": 0, "detections": 20, "model": "fasterrcnn_resnet18",
               "model_args": {"detections": 20, "fpn_channels": 32}},
}


def write_checkpoint(folder: Path, task: str, seed: int = 0) -> Path:
    """An untrained ``task`` model saved as a cnnkit checkpoint ``folder/<task>.pt``."""
    torch.manual_seed(seed)
    meta = {**META[task], **STATS}
    model = build_image_model(meta).eval()
    if task in ("instance", "detect"):  # an untrained detector scores ~0.5 everywhere: keep a few objects
        model.net.roi_heads.score_thresh = 0.0
    path = folder / f"{task}.pt"
    save_checkpoint({"cnnkit_version": __version__, "task": task, "meta": model.meta,
                     "config": {"task": task, "model": meta["model"], "imgsz": meta["imgsz"]},
                     "model": model.state_dict(), "epoch": 0, "best_fitness": 0.0, "metrics": {}}, path)
    return path

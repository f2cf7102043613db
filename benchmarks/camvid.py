"""CamVid semantic segmentation (train -> val, 11 classes, index 11 ignored), from random initialisation.

Two parts, in one run on one machine:
1. Throughput, side by side: cnnkit's U-Net against segmentation_models_pytorch's U-Net with the
   same encoder (ResNet-18, no pretrained weights), training steps (forward, backward, SGD step) and
   inference (no_grad) in images per second, and the peak memory of each, each measured in its own
   process, alternating A B A B and keeping the better of the two.
2. Training a cnnkit recipe: val mIoU after each epoch against elapsed seconds (data loading
   included), then the best checkpoint evaluated at full resolution (360 x 480, predictions resized
   back to the original size) on the 101 val images, with per-class IoU and inference speed.

    pip install segmentation-models-pytorch   # the peer; benchmarks only
    python benchmarks/camvid.py --data ../shared/datasets/camvid --recipe camvid_unet
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from common import machine, peak_rss_mb, reset_peak_rss

from cnnkit.config import RECIPES  # noqa: E402 - the recipes ship with the package

NUM_CLASSES, IGNORE = 11, 11


def build(kind: str) -> torch.nn.Module:
    if kind == "smp":
        import segmentation_models_pytorch as smp

        return smp.Unet("resnet18", encoder_weights=None, classes=NUM_CLASSES)
    from cnnkit.models import create_model

    return create_model("unet_resnet18", num_classes=NUM_CLASSES)


def measure(kind: str, height: int, width: int, batch: int, steps: int, channels_last: bool) -> dict:
    """Images per second for training steps and for inference, and peak RSS, of one model."""
    torch.manual_seed(0)
    model = build(kind)
    x = torch.randn(batch, 3, height, width)
    y = torch.randint(0, NUM_CLASSES, (batch, height, width))
    if channels_last:
        model, x = model.to(memory_format=torch.channels_last), x.contiguous(memory_format=torch.channels_last)
    reset_peak_rss()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    model.train()
    for step in range(steps + 1):
        if step == 1:  # the first step allocates and warms up
            start = time.perf_counter()
        loss = torch.nn.functional.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    train_s = (time.perf_counter() - start) / steps
    model.eval()
    with torch.no_grad():
        model(x)
        start = time.perf_counter()
        for _ in range(steps):
            model(x)
    infer_s = (time.perf_counter() - start) / steps
    return {"train_img_s": batch / train_s, "infer_img_s": batch / infer_s, "peak_rss_mb": peak_rss_mb()}


def compare_throughput(sizes: list[tuple[int, int]], batch: int, steps: int) -> list[dict]:
    rows = []
    for height, width in sizes:
        for channels_last in (False, True):
            best: dict[str, dict] = {}
            for _ in range(2):
                for kind in ("smp", "cnnkit"):
                    spec = json.dumps([kind, height, width, batch, steps, channels_last])
                    out = subprocess.run([sys.executable, __file__, "--measure", spec], capture_output=True,
                                         text=True, check=True)
                    result = json.loads(out.stdout.strip().splitlines()[-1])
                    if kind not in best or result["train_img_s"] > best[kind]["train_img_s"]:
                        best[kind] = {**result, "infer_img_s": max(result["infer_img_s"],
                                                                   best.get(kind, {}).get("infer_img_s", 0))}
            row = {"size": f"{height}x{width}", "batch": batch, "channels_last": channels_last, **{
                f"{k}_{m}": v for k, r in best.items() for m, v in r.items()}}
            row["train_ratio"] = row["cnnkit_train_img_s"] / row["smp_train_img_s"]
            row["infer_ratio"] = row["cnnkit_infer_img_s"] / row["smp_infer_img_s"]
            print(json.dumps(row), flush=True)
            rows.append(row)
    return rows


def full_resolution_eval(weights: Path, data: Path, tta: bool) -> dict:
    """mIoU of ``weights`` on val at the masks' own resolution, through the prediction path."""
    from PIL import Image

    from cnnkit.api import load
    from cnnkit.metrics.segmentation import scores_from_confusion

    model = load(weights, device="cpu")
    images = sorted((data / "val" / "images").iterdir())
    cm = np.zeros((NUM_CLASSES, NUM_CLASSES), np.int64)
    start = time.perf_counter()
    for path in images:
        pred = model.predict(str(path), mode="whole", tta=tta)[0]["mask"].astype(np.int64)
        truth = np.asarray(Image.open(data / "val" / "masks" / f"{path.stem}.png")).astype(np.int64)
        keep = truth != IGNORE
        cm += np.bincount(truth[keep] * NUM_CLASSES + pred[keep], minlength=NUM_CLASSES**2).reshape(cm.shape)
    elapsed = time.perf_counter() - start
    scores = scores_from_confusion(torch.from_numpy(cm))
    return {"miou": float(scores["iou"].nanmean()), "pixel_acc": float(scores["pixel_acc"]),
            "mean_acc": float(scores["acc"].nanmean()), "per_class_iou": dict(zip(model.classes,
                                                                                  scores["iou"].tolist())),
            "predict_img_s": len(images) / elapsed, "tta": tta}


def train_recipe(data: Path, recipe: str, out: Path, epochs: int) -> dict:
    from cnnkit.api import train_with
    from cnnkit.config import load_yaml, make_config

    values = {**load_yaml(RECIPES / f"{recipe}.yaml"), "task": "segment", "data": str(data), "project": str(out),
              "name": recipe, "verbose": False}
    if epochs:
        values["epochs"] = epochs
    cfg = make_config(values)
    history: list[dict] = []
    reset_peak_rss()
    start = time.perf_counter()

    def record(epoch: int, row: dict) -> None:
        history.append({"epoch": epoch, "miou": row["miou"], "time_s": time.perf_counter() - start,
                        "train_img_s": row["train_img_s"], "val_img_s": row["val_img_s"]})
        print(f"  epoch {epoch}: val mIoU {row['miou']:.4f} (at {cfg.options.max_size or 'full'} px) at "
              f"{history[-1]['time_s']:.0f}s, {row['train_img_s']:.1f} train img/s", flush=True)

    result = train_with(cfg, on_epoch_end=record)
    return {"recipe": recipe, "config": {k: v for k, v in values.items() if k not in ("data", "project")},
            "history": history, "best_miou_train_scale": max(h["miou"] for h in history),
            "peak_rss_mb": peak_rss_mb(), "run_dir": str(result.run_dir)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="../shared/datasets/camvid", type=Path)
    parser.add_argument("--recipe", default="camvid_unet", help="a recipe in src/cnnkit/recipes ('' to skip)")
    parser.add_argument("--epochs", type=int, default=0, help="override the recipe's epochs")
    parser.add_argument("--sizes", default="192x256,352x480", help="input sizes of the throughput comparison")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=4, help="timed steps per throughput measurement")
    parser.add_argument("--tta", action="store_true", help="flip TTA in the full-resolution evaluation")
    parser.add_argument("--keep", type=Path, default=None, help="keep the run folder here")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/camvid.json"))
    parser.add_argument("--measure", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(*json.loads(args.measure))))
        return
    if not (args.data / "train").is_dir():
        raise SystemExit(f"{args.data}: CamVid not found (expected train/ and val/); pass --data")
    print(f"machine: {machine()}", flush=True)
    report: dict = {"date": time.strftime("%Y-%m-%d"), "machine": machine()}
    sizes = [tuple(int(v) for v in s.split("x")) for s in args.sizes.split(",") if s]
    report["throughput"] = compare_throughput(sizes, args.batch, args.steps) if sizes else []
    if args.recipe:
        with tempfile.TemporaryDirectory() as tmp:
            project = args.keep or Path(tmp)
            report["training"] = train_recipe(args.data, args.recipe, project, args.epochs)
            best = Path(report["training"]["run_dir"]) / "best.pt"
            report["full_resolution"] = full_resolution_eval(best, args.data, args.tta)
        print(json.dumps(report["full_resolution"], indent=2))
    args.out.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()

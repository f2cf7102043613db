"""From seeds to a model: a U-Net trained on masks grown from 5 seeds per class per image of CamVid train,
against the same recipe on the full masks, both scored on CamVid val (101 images, Void ignored).

    python benchmarks/grow_to_model.py --camvid ../shared/datasets/camvid --epochs 12

Steps, timed: (1) `cnnkit.segment_images` on the 367 training images with their seeds -> a data set
(masks 255 where the confidence is below 0.5, as `cnnkit segment` writes it), with CamVid val beside it as
val/ (Void 11 -> 255); (2) the recipe `camvid_unet` (U-Net, ResNet-18 encoder, 120x160) on it;
(3) the same recipe on CamVid's full training masks; both best checkpoints predict the val images at
full size and are scored with one confusion over the data set.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine  # noqa: E402
from grow_data import CAMVID_VOID, draw_seeds  # noqa: E402

import cnnkit  # noqa: E402
from cnnkit.config import RECIPES, load_yaml, make_config  # noqa: E402
from cnnkit.grow.segments import write_dataset  # noqa: E402
from cnnkit.metrics.matching import confusion, scores  # noqa: E402


def read(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.array(im)


def make_seed_data(camvid: Path, out: Path, per_class: int) -> dict:
    """out/train: images and masks grown from seeds; out/val: CamVid val with Void as 255."""
    paths = sorted((camvid / "train" / "images").glob("*.webp"))
    truths = [read(camvid / "train" / "masks" / f"{p.stem}.png") for p in paths]
    rng = np.random.default_rng(0)
    seeds = [draw_seeds(t.astype(np.int64), list(range(CAMVID_VOID)), per_class, rng) for t in truths]
    names = [line.split(",")[1] for line in (camvid / "classes.csv").read_text().splitlines()[1:CAMVID_VOID + 1]]
    start = time.perf_counter()
    results = cnnkit.segment_images([str(p) for p in paths], [s.astype(np.int32) for s in seeds], classes=names)
    seconds = time.perf_counter() - start
    write_dataset(results, out / "train", min_confidence=0.5)
    made = [read(out / "train" / "masks" / f"{p.stem}.png") for p in paths]
    conf = np.zeros((CAMVID_VOID, CAMVID_VOID), np.int64)
    for m, t in zip(made, truths):  # the made masks against the truth, where both say something
        valid = (m != 255) & (t != CAMVID_VOID)
        conf += confusion(m[valid].astype(np.int64), t[valid].astype(np.int64), CAMVID_VOID, CAMVID_VOID)
    kept = np.mean([(m != 255).mean() for m in made])
    for folder in ("images", "masks"):
        (out / "val" / folder).mkdir(parents=True, exist_ok=True)
    for p in sorted((camvid / "val" / "images").glob("*.webp")):
        (out / "val" / "images" / p.name).write_bytes(p.read_bytes())
        mask = read(camvid / "val" / "masks" / f"{p.stem}.png")
        Image.fromarray(np.where(mask == CAMVID_VOID, 255, mask).astype(np.uint8)).save(
            out / "val" / "masks" / f"{p.stem}.png")
    (out / "classes.csv").write_text((out / "train" / "classes.csv").read_text())
    made_scores = scores(conf)
    return {"seconds": seconds, "seconds_per_image": seconds / len(paths), "pixels_kept": float(kept),
            "made_masks_miou_on_kept_pixels": made_scores["miou"], "made_masks_acc_on_kept_pixels":
            made_scores["pixel_acc"], "seeds_per_class": per_class, "images": len(paths)}


def train(data: Path, project: Path, name: str, epochs: int, ignore: int) -> tuple[Path, float]:
    from cnnkit.api import train_with

    values = {**load_yaml(RECIPES / "camvid_unet.yaml"), "task": "segment", "data": str(data), "epochs": epochs,
              "ignore_index": ignore, "project": str(project), "name": name, "verbose": False}
    start = time.perf_counter()
    result = train_with(make_config(values))
    return Path(result.run_dir) / "best.pt", time.perf_counter() - start


def val_miou(weights: Path, camvid: Path) -> dict:
    model = cnnkit.load(weights)
    conf = np.zeros((CAMVID_VOID, CAMVID_VOID), np.int64)
    for p in sorted((camvid / "val" / "images").glob("*.webp")):
        pred = model.predict(str(p))[0].mask.astype(np.int64)
        truth = read(camvid / "val" / "masks" / f"{p.stem}.png").astype(np.int64)
        conf += confusion(np.minimum(pred, CAMVID_VOID - 1), truth, CAMVID_VOID, CAMVID_VOID + 1,
                          ignore_index=CAMVID_VOID)[:, :CAMVID_VOID]
    s = scores(conf)
    return {"miou": s["miou"], "pixel_acc": s["pixel_acc"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--camvid", default="../shared/datasets/camvid")
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--seeds-per-class", type=int, default=5)
    parser.add_argument("--work", default="/tmp/grow_to_model")
    parser.add_argument("--out", default="benchmarks/grow_to_model.json")
    args = parser.parse_args()
    torch.set_num_threads(2)
    camvid, work = Path(args.camvid), Path(args.work)
    report: dict = {"machine": machine(), "date": time.strftime("%Y-%m-%d %H:%M"), "args": vars(args)}
    report["masks"] = make_seed_data(camvid, work / "seeded", args.seeds_per_class)
    print(json.dumps(report["masks"]), flush=True)
    for name, data, ignore in (("from_seeds", work / "seeded", 255), ("full_masks", camvid, CAMVID_VOID)):
        weights, seconds = train(data, work / "runs", name, args.epochs, ignore)
        report[name] = {"train_seconds": seconds, **val_miou(weights, camvid)}
        print(name, json.dumps(report[name]), flush=True)
        Path(args.out).write_text(json.dumps(report, indent=2))
    report["ratio"] = report["from_seeds"]["miou"] / report["full_masks"]["miou"]
    Path(args.out).write_text(json.dumps(report, indent=2))
    print(f"from seeds / full masks: {report['ratio']:.1%} of the full-mask val mIoU")


if __name__ == "__main__":
    main()

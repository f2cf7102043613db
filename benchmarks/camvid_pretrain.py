"""CamVid: U-Net (ResNet-18) from an encoder pretrained on CamVid's own training images, against random
initialisation, at the same total time on the same machine.

(b) pretrain the encoder without labels (SimCLR on the 367 training images, labels unused), then
    train the segmentation recipe (the packaged recipe camvid_unet) for ``--epochs`` epochs;
(a) train the same recipe from random initialisation for as many epochs as fit in (b)'s total time.
Val mIoU (101 images, at the training resolution, as the recipe's runs report it) is each run's best
epoch and its last.

    python benchmarks/camvid_pretrain.py --data ../shared/datasets/camvid
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, peak_rss_mb, reset_peak_rss  # noqa: E402

import cnnkit  # noqa: E402
from cnnkit.config import RECIPES  # noqa: E402 - the recipes ship with the package

RECIPE = RECIPES / "camvid_unet.yaml"


def curve(run_dir: Path) -> list[dict]:
    with (run_dir / "metrics.csv").open() as f:
        return [{"epoch": int(r["epoch"]), "miou": round(float(r["miou"]), 4), "time_s": round(float(r["time_s"]))}
                for r in csv.DictReader(f)]


def segment(args: argparse.Namespace, work: Path, name: str, epochs: int, pretrained: str = "") -> dict:
    reset_peak_rss()
    start = time.perf_counter()
    run = cnnkit.train(config=str(RECIPE), data=args.data, task="segment", epochs=epochs, pretrained=pretrained,
                       project=str(work), name=name, exist_ok=True, verbose=False, save_period=0)
    points = curve(run.run_dir)
    return {"epochs": epochs, "seconds": round(time.perf_counter() - start), "peak_mb": round(peak_rss_mb()),
            "best_miou": max(p["miou"] for p in points), "last_miou": points[-1]["miou"], "curve": points}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default="../shared/datasets/camvid")
    p.add_argument("--pretrain-epochs", type=int, default=30)
    p.add_argument("--imgsz", type=int, default=96, help="pretraining crop side (pixels)")
    p.add_argument("--epochs", type=int, default=16, help="segmentation epochs after pretraining")
    p.add_argument("--out", default="benchmarks/camvid_pretrain.json")
    args = p.parse_args()
    work = Path(tempfile.mkdtemp(prefix="camvid_pretrain_"))
    results: dict = {"machine": machine(), "date": time.strftime("%Y-%m-%d"), "recipe": RECIPE.name}

    reset_peak_rss()
    start = time.perf_counter()
    pre = cnnkit.train(task="pretrain", data=str(Path(args.data) / "train"), model="unet_resnet18",
                       imgsz=args.imgsz, epochs=args.pretrain_epochs, batch=32, project=str(work), name="pretrain",
                       verbose=False, save_period=0)
    results["pretrain"] = {"epochs": args.pretrain_epochs, "imgsz": args.imgsz,
                           "seconds": round(time.perf_counter() - start), "peak_mb": round(peak_rss_mb()),
                           "spread": round(pre.best.get("spread", float("nan")), 3)}
    print("pretrain", results["pretrain"], flush=True)
    results["b_pretrained"] = segment(args, work, "b", args.epochs, str(pre.run_dir / "best.pt"))
    total = results["pretrain"]["seconds"] + results["b_pretrained"]["seconds"]
    per_epoch = results["b_pretrained"]["seconds"] / args.epochs
    print("b", {k: v for k, v in results["b_pretrained"].items() if k != "curve"}, flush=True)
    results["a_scratch"] = segment(args, work, "a", max(args.epochs, round(total / per_epoch)))
    print("a", {k: v for k, v in results["a_scratch"].items() if k != "curve"}, flush=True)
    Path(args.out).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()

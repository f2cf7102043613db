"""CamVid validation with and without leakage: the same recipe, the same number of training images,
validated on random frames (whose neighbours in the same video are in training) and on a whole
video sequence held out of training (``--val-group``).

CamVid's training folder holds three sequences (0001TP: 62 frames, 0006R0: 101, 0016E5: 204).
Run A holds out 101 random frames (``--val-split 0.275``); run B holds out the 0006R0 sequence, 101
frames (``--val-group '^([^_]+)_'``, chosen by the seed as the group nearest 27.5%). Both train on
the other 266 frames for the same epochs, from random initialisation, and report the best val mIoU
(at the training scale, 120 x 160) and per-class IoU.

    python benchmarks/camvid_groups.py --data ../shared/datasets/camvid --epochs 12
"""

from __future__ import annotations

import argparse
import csv
import json
import tempfile
import time
from pathlib import Path

from common import machine

from cnnkit.config import RECIPES  # noqa: E402 - the recipes ship with the package

RECIPE = RECIPES / "camvid_unet.yaml"


def run(data: Path, project: Path, name: str, epochs: int, extra: list[str]) -> dict:
    from cnnkit.cli.main import main

    start = time.perf_counter()
    code = main(["train", "segment", "--config", str(RECIPE), "--data", str(data / "train"), "--classes-file",
                 str(data / "classes.csv"), "--epochs", str(epochs), "--val-split", "0.275", "--project",
                 str(project), "--name", name, "--no-verbose", *extra])
    assert code == 0, f"run {name} failed"
    folder = project / "segment" / name
    rows = list(csv.DictReader((folder / "metrics.csv").open()))
    best = max(rows, key=lambda r: float(r["miou"]))
    per_class = {r["class"]: float(r["iou"]) for r in csv.DictReader((folder / "per_class.csv").open())
                 if "iou" in r} if (folder / "per_class.csv").exists() else {}
    return {"best_miou": float(best["miou"]), "best_epoch": int(best["epoch"]), "per_class_iou": per_class,
            "seconds": round(time.perf_counter() - start, 1)}


RUNS = {"random_frames": [], "held_out_sequence": ["--val-group", "^([^_]+)_"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path("../shared/datasets/camvid"))
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--runs", default=",".join(RUNS), help="runs to (re)do; the others are kept from --out")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "camvid_groups.json")
    args = parser.parse_args()
    report = json.loads(args.out.read_text()) if args.out.exists() else {}
    report.update(machine=machine(), epochs=args.epochs)
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.runs.split(","):
            report[name] = run(args.data, Path(tmp), name, args.epochs, RUNS[name])
    a, b = report["random_frames"]["best_miou"], report["held_out_sequence"]["best_miou"]
    report["drop_points"] = round(100 * (a - b), 1)
    print(json.dumps(report, indent=2))
    args.out.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()

"""DSB2018 domain shift: Mask R-CNN trained with labels on grey fluorescence images only, scored on the
colour (brightfield, H&E) images it never saw.

DSB2018 is split by imaging type (8-bit grey files vs RGB files). Three arms, the same recipe
(the packaged recipe dsb2018_maskrcnn) and number of epochs on the grey images:
(a) supervised as today;
(b) with augmentations meant for such shifts (``shift_augment``: colour inversion, grey conversion,
    strong colour jitter);
(c) the encoder pretrained without labels on all images, colour ones included (SimCLR), then (a).
Each is scored (pycocotools mask AP) on the grey held-out 10% and on all colour images.

    python benchmarks/dsb2018_shift.py --data ../shared/datasets/dsb2018 --epochs 3
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, peak_rss_mb, reset_peak_rss  # noqa: E402

import cnnkit  # noqa: E402
from cnnkit.config import RECIPES  # noqa: E402 - the recipes ship with the package

RECIPE = RECIPES / "dsb2018_maskrcnn.yaml"


def split_by_type(data: Path, work: Path) -> dict[str, Path]:
    """grey/ and colour/ folders of links (images/ + masks/), by the image files' modes."""
    out = {"grey": work / "grey", "colour": work / "colour"}
    for folder in out.values():
        for sub in ("images", "masks"):
            (folder / sub).mkdir(parents=True, exist_ok=True)
    for image in sorted((data / "images").glob("*.png")):
        with Image.open(image) as im:
            kind = "colour" if im.mode in ("RGB", "RGBA") else "grey"
        for sub, src in (("images", image), ("masks", data / "masks" / image.name)):
            link = out[kind] / sub / image.name
            if not link.exists():
                os.symlink(src.resolve(), link)
    return out


def score(weights: Path, data: Path, out: Path) -> dict:
    """cnnkit val on every image of ``data``: mask and box AP."""
    subprocess.run([sys.executable, "-m", "cnnkit.cli.main", "val", "--weights", str(weights), "--data", str(data),
                    "--split", "all", "--out", str(out)], check=True, capture_output=True)
    metrics = json.loads((out / "metrics.json").read_text())
    return {k: round(metrics[k], 4) for k in ("mask_ap", "mask_ap50", "box_ap50") if k in metrics}


def arm(name: str, folders: dict, work: Path, epochs: int, **overrides) -> dict:
    reset_peak_rss()
    start = time.perf_counter()
    run = cnnkit.train(config=str(RECIPE), data=str(folders["grey"]), epochs=epochs, project=str(work), name=name,
                       exist_ok=True, verbose=False, save_period=0, **overrides)
    row = {"seconds": round(time.perf_counter() - start), "peak_mb": round(peak_rss_mb()),
           "grey_heldout_mask_ap": round(run.best.get("mask_ap", float("nan")), 4)}
    row["colour"] = score(run.run_dir / "best.pt", folders["colour"], work / f"{name}_colour")
    print(name, json.dumps(row), flush=True)
    return row


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default="../shared/datasets/dsb2018")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--pretrain-epochs", type=int, default=12)
    p.add_argument("--pretrain-imgsz", type=int, default=128)
    p.add_argument("--out", default="benchmarks/dsb2018_shift.json")
    p.add_argument("--arms", default="abc", help="which arms to run; rows already in --out are kept for the rest")
    args = p.parse_args()
    work = Path(tempfile.mkdtemp(prefix="dsb2018_shift_"))
    folders = split_by_type(Path(args.data), work)
    out = Path(args.out)
    results: dict = json.loads(out.read_text()) if out.exists() else {}
    results |= {"machine": machine(), "date": time.strftime("%Y-%m-%d"), "epochs": args.epochs,
                "grey_images": len(list((folders["grey"] / "images").iterdir())),
                "colour_images": len(list((folders["colour"] / "images").iterdir()))}
    if "a" in args.arms:
        results["a_supervised"] = arm("a", folders, work, args.epochs)
    if "b" in args.arms:
        results["b_shift_augment"] = arm("b", folders, work, args.epochs, shift_augment=True)
    if "c" in args.arms:
        results |= pretrained_arm(args, folders, work, results)
    out.write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))


def pretrained_arm(args: argparse.Namespace, folders: dict, work: Path, results: dict) -> dict:
    """(c): SimCLR on every image (grey and colour, no labels), then arm (a) from that encoder."""
    reset_peak_rss()
    start = time.perf_counter()
    pre = cnnkit.train(task="pretrain", data=args.data, model="maskrcnn_resnet18", imgsz=args.pretrain_imgsz,
                       epochs=args.pretrain_epochs, batch=32, project=str(work), name="pretrain", verbose=False,
                       save_period=0)
    row = {"epochs": args.pretrain_epochs, "imgsz": args.pretrain_imgsz,
           "images": results["grey_images"] + results["colour_images"],
           "seconds": round(time.perf_counter() - start), "peak_mb": round(peak_rss_mb()),
           "spread": round(pre.best.get("spread", float("nan")), 3)}
    print("pretrain", row, flush=True)
    return {"pretrain": row,
            "c_pretrained": arm("c", folders, work, args.epochs, pretrained=str(pre.run_dir / "best.pt"))}


if __name__ == "__main__":
    main()

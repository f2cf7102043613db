"""DSB2018 nuclei: Mask R-CNN from random initialisation on a fixed held-out 10%.

Records mask AP and AP50 (pycocotools) on the held-out images after every epoch against the
elapsed training time (evaluation time excluded and reported apart), training and inference
images/s, peak memory, and the model and image size used.

    python benchmarks/dsb2018.py --data ../shared/datasets/dsb2018 [--epochs N]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import machine, peak_rss_mb, reset_peak_rss  # noqa: E402

from cnnkit.config import RECIPES  # noqa: E402 - the recipes ship with the package


def train_recipe(data: Path, recipe: str, out: Path, epochs: int) -> dict:
    from cnnkit.api import train_with
    from cnnkit.config import load_yaml, make_config

    values = {**load_yaml(RECIPES / f"{recipe}.yaml"), "data": str(data), "project": str(out), "name": recipe,
              "verbose": False, "exist_ok": True}
    if epochs:
        values["epochs"] = epochs
    cfg = make_config(values)
    history: list[dict] = []
    reset_peak_rss()
    start, train_s = time.perf_counter(), 0.0

    def record(epoch: int, row: dict) -> None:
        nonlocal train_s
        train_s += row["train_s"]
        history.append({"epoch": epoch, "train_time_s": round(train_s, 1),
                        "wall_s": round(time.perf_counter() - start, 1),
                        **{k: round(row[k], 4) for k in ("mask_ap", "mask_ap50", "box_ap", "box_ap50", "train_loss",
                                                          "train_img_s", "val_img_s")}})
        h = history[-1]
        print(f"  epoch {epoch}: mask AP {h['mask_ap']:.3f} AP50 {h['mask_ap50']:.3f} box AP50 {h['box_ap50']:.3f} "
              f"after {train_s / 60:.1f} min of training ({h['wall_s'] / 60:.1f} min wall), "
              f"{h['train_img_s']:.2f} train img/s, {h['val_img_s']:.2f} val img/s", flush=True)

    result = train_with(cfg, on_epoch_end=record)
    return {"recipe": recipe, "config": {k: v for k, v in values.items() if k not in ("data", "project")},
            "history": history, "peak_rss_mb": round(peak_rss_mb()), "run_dir": str(result.run_dir)}


def inference_speed(weights: Path, data: Path, limit: int = 40) -> dict:
    """Images/s of ``Model.predict`` (default thresholds) on held-out images, one at a time."""
    from cnnkit.api import load
    from cnnkit.data.instance_data import load_instance_data
    from cnnkit.data.request import DataRequest

    model = load(weights, device="cpu")
    items = load_instance_data(DataRequest(str(data), val_split=0.1, seed=0)).val[:limit]
    paths = [i.image for i in items]
    model.predict(paths[:2])  # warm-up
    start = time.perf_counter()
    preds = model.predict(paths, batch=1)
    elapsed = time.perf_counter() - start
    return {"images": len(paths), "img_s": round(len(paths) / elapsed, 3),
            "mean_objects": round(sum(len(p["instances"]) for p in preds) / len(preds), 1)}


def held_out_eval(weights: Path, data: Path) -> dict:
    """COCO AP of the whole held-out images through ``evaluate()``, the path validation takes in training."""
    from torch.utils.data import DataLoader

    from cnnkit.api import load
    from cnnkit.data.instance import InstanceDataset, list_collate
    from cnnkit.data.instance_data import load_instance_data
    from cnnkit.data.request import DataRequest
    from cnnkit.engine.loop import evaluate

    model = load(weights, device="cpu")
    items = load_instance_data(DataRequest(str(data), val_split=0.1, seed=0)).val
    loader = DataLoader(InstanceDataset(items, model.meta["in_chans"]), batch_size=1, collate_fn=list_collate)
    metrics = model.task.build_metrics(model.meta, model.device)
    results = evaluate(model.module, loader, metrics, device=model.device)
    return {k: round(v, 4) for k, v in results.items() if k.startswith(("mask_", "box_"))}


def predicted_ap(weights: Path, data: Path) -> dict:
    """Mask AP of ``Model.predict`` itself on the held-out images (score threshold 0.05, as COCO scores
    it): the path users run, where images above four training crops are tiled and objects merged;
    and the same images through ``Model.predict`` untiled (one tile the size of the image), so that
    the cost of tiling is measured on the same weights in the same run."""
    from cnnkit.api import load
    from cnnkit.data.instance import InstanceDataset
    from cnnkit.data.instance_data import load_instance_data
    from cnnkit.data.request import DataRequest
    from cnnkit.metrics.coco import COCOMetrics

    model = load(weights, device="cpu")
    items = load_instance_data(DataRequest(str(data), val_split=0.1, seed=0)).val
    dataset = InstanceDataset(items, model.meta["in_chans"])
    paths = ("tiled", "whole")
    metrics = {p: COCOMetrics(model.meta["classes"], masks=True, max_dets=model.meta["detections"]) for p in paths}
    tiled = 0
    for i, item in enumerate(items):
        _, target = dataset[i]
        h, w = target["masks"].shape[-2:]
        tiled += h * w > 4 * model.meta["crop"][0] * model.meta["crop"][1]  # the predictor tiles these
        preds = {"tiled": model.predict([item.image], score_thresh=0.05)[0],
                 "whole": model.predict([item.image], score_thresh=0.05, tile=max(h, w))[0]}
        for path, m in metrics.items():
            m.images.append({"id": i + 1, "height": h, "width": w})
            m.gt += m.ground_truth(target, i + 1)
            for inst in preds[path]["instances"]:
                x0, y0, x1, y1 = inst["box"]
                m.dt.append({"image_id": i + 1, "category_id": inst["class_id"] + 1, "score": inst["score"],
                             "bbox": [x0, y0, x1 - x0, y1 - y0], "segmentation": inst["rle"]})
    scores = {p: {k: round(v, 4) for k, v in m.compute().items() if k.startswith("mask_ap")}
              for p, m in metrics.items()}
    return {**scores["tiled"], "untiled": scores["whole"], "tiled_images": int(tiled), "images": len(items)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path("../shared/datasets/dsb2018"))
    parser.add_argument("--recipe", default="dsb2018_maskrcnn")
    parser.add_argument("--epochs", type=int, default=0, help="override the recipe's epochs")
    parser.add_argument("--runs", type=Path, default=Path("runs/bench"))
    parser.add_argument("--out", type=Path, default=Path("benchmarks/dsb2018.json"))
    parser.add_argument("--score-only", type=Path, default=None, metavar="WEIGHTS",
                        help="skip training: add the predict-path AP and speed of WEIGHTS to --out")
    args = parser.parse_args()
    if args.score_only:
        report = json.loads(args.out.read_text()) if args.out.is_file() else {}
        report["scored_weights"] = str(args.score_only)
        if "training" in report:
            report["best_by_ap50"] = max(report["training"]["history"], key=lambda h: h["mask_ap50"])
        report["held_out"] = held_out_eval(args.score_only, args.data)
        report["predict_path"] = predicted_ap(args.score_only, args.data)
        report["inference"] = inference_speed(args.score_only, args.data)
        print(json.dumps({k: report[k] for k in ("held_out", "predict_path", "inference")}, indent=2))
        args.out.write_text(json.dumps(report, indent=2))
        return
    if not (args.data / "images").is_dir():
        sys.exit(f"{args.data}: DSB2018 not found (expected images/ and masks/); pass --data")
    print(f"machine: {machine()}", flush=True)
    report = {"machine": machine(), "date": time.strftime("%Y-%m-%d"), "training": train_recipe(
        args.data, args.recipe, args.runs, args.epochs)}
    weights = Path(report["training"]["run_dir"]) / "best.pt"
    report["inference"] = inference_speed(weights, args.data)
    report["predict_path"] = predicted_ap(weights, args.data)
    print(json.dumps({k: report[k] for k in ("predict_path", "inference")}), flush=True)
    best = max(report["training"]["history"], key=lambda h: h["mask_ap"])
    report["best"] = best
    print(f"best: epoch {best['epoch']}, mask AP {best['mask_ap']:.3f}, AP50 {best['mask_ap50']:.3f} after "
          f"{best['train_time_s'] / 60:.1f} min of training; peak RSS {report['training']['peak_rss_mb']} MB")
    args.out.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()

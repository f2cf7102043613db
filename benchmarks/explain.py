"""How faithful cnnkit's explanations are: deletion and insertion AUC (Petsiuk et al., RISE, BMVC 2018) and
the pointing game (Zhang et al., Excitation Backprop, IJCV 2018), per method, against a random map and a
centre-bias map (``cnnkit.metrics.faithfulness``).

Five models: (a) the demo classifier and (b) the demo segmenter (trained as `cnnkit demo` trains them, or
given as checkpoints), (c) a classifier and (d) a segmenter trained longer on the same shapes at 64 px
(``CONVERGED``), all on synthetic shape scenes they never trained on (another seed); (e) a Fashion-MNIST
classifier (the fast recipe, or a checkpoint) on the test images. Each image's map is made for one target:

- classify: the true class; score = its softmax probability; pointing game: a hit when the map's maximum lies
  on the large shape (the one that gives the scene its label);
- segment: the large shape's class; score = that class's mean probability over the pixels the model predicts
  as it in the untouched image (``ExplainTargets.regions``: the region stays fixed while pixels are deleted);
  pointing game: a hit on any pixel of that class (Zhang et al. count any instance of the cued category).
  An image where the model predicts none of the class is left out (counted as ``skipped``).

Deletion two ways: pixels set to black (RISE), and ROAD's noisy linear imputation (Rong et al., ICML 2022:
black salt on a small image is out of distribution and can kill the score faster than removing the object);
insertion starts from a blurred copy. Curves of 33 points (``--steps``; ROAD: 11, ``--road-steps``, its
10% grid) at the model's working size; lower deletion AUC and higher insertion AUC are better. Pointing game
strict (the maximum on the object's pixels) and with Zhang et al.'s tolerance, 15 px at 224 px scaled to the
working size (2 px at 32, 4 px at 64). scorecam and occlusion explain the first ``--slow-images`` only.
``--extra-layer segment=encoder.stages.3`` adds a Grad-CAM row at another layer. Mean ± standard error.

    E="--images 100 --slow-images 20 --append --extra-layer segment=encoder.stages.3"
    python benchmarks/explain.py --models classify --classify /tmp/demo6/classify/classify/best.pt $E
    python benchmarks/explain.py --models segment --segment /tmp/demo6/segment/segment/best.pt $E
    python benchmarks/explain.py --models fashion --data ../shared/datasets/fashion-mnist $E

(one model a run, side by side, ``--append`` to one JSON; benchmarks/RESULTS.md has the runs' commands.)
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

METHODS = ("gradcam", "gradcam++", "scorecam", "occlusion", "ig")
BASELINES = ("random", "centre")
SCENE_SEED, FIRST_SCENE = 4242, 800_000  # training scenes are seed 0.. index 0..N: these are new


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--classify", type=Path, help="demo classifier checkpoint (default: train it as `cnnkit demo`)")
    p.add_argument("--segment", type=Path, help="demo segmenter checkpoint (default: train it as `cnnkit demo`)")
    p.add_argument("--fashion", type=Path, help="Fashion-MNIST classifier checkpoint (default: train fashion_fast)")
    p.add_argument("--classify-converged", type=Path, help="the longer-trained shapes classifier (default: train it)")
    p.add_argument("--segment-converged", type=Path, help="the longer-trained shapes segmenter (default: train it)")
    p.add_argument("--extra-layer", action="append", default=[], metavar="MODEL=LAYER",
                   help="an extra Grad-CAM row for MODEL at LAYER (repeatable), e.g. segment=encoder.stages.3")
    p.add_argument("--data", type=Path, default=Path("../shared/datasets/fashion-mnist"),
                   help="Fashion-MNIST IDX folder (for --fashion's images and its training)")
    p.add_argument("--fashion-epochs", type=int, default=1, help="epochs of the fast recipe when training")
    p.add_argument("--models", default="classify,segment,classify-converged,segment-converged,fashion",
                   help="which of classify,segment,classify-converged,segment-converged,fashion to run")
    p.add_argument("--methods", default=",".join(METHODS), help="comma-separated explanation methods")
    p.add_argument("--images", type=int, default=100, help="shape scenes per model")
    p.add_argument("--slow-images", type=int, default=30, help="of these, how many scorecam and occlusion explain")
    p.add_argument("--fashion-images", type=int, default=200, help="Fashion-MNIST test images")
    p.add_argument("--steps", type=int, default=32, help="points of each deletion/insertion curve, less one")
    p.add_argument("--road-steps", type=int, default=10,
                   help="points of the ROAD deletion curve, less one (10: ROAD's 10..90%% grid and both ends)")
    p.add_argument("--append", action="store_true",
                   help="add the models to --out's existing figures (runs of one model each, side by side)")
    p.add_argument("--project", type=Path, help="where models are trained (default: a temporary folder)")
    p.add_argument("--out", type=Path, default=Path("benchmarks/explain.json"))
    return p.parse_args()


def train_demo(task: str, project: Path) -> Path:
    """The model `cnnkit demo` trains for ``task`` (its spec's demo recipe, cnnkit.cli.demo's way)."""
    from cnnkit.api import train_with, with_task_defaults
    from cnnkit.config import make_config
    from cnnkit.tasks import get_spec

    demo = get_spec(task).demo
    assert demo is not None
    recipe = dict(demo.recipe, task=task, project=str(project), name=task, exist_ok=True, verbose=False)
    return train_with(make_config(with_task_defaults(recipe), origin="demo")).run_dir / "best.pt"


# Trained longer on the same shapes, at 64 px (the demo models' 32 px leaves a shape a few pixels): sized for a
# few minutes each on 2 quiet CPU cores; their validation figures are printed and written to the JSON. On
# 2026-12-07 the classifier had val top-1 0.995 after 2 of its 6 epochs; the segmenter reached val mIoU 0.60
# in its 16 epochs, short of the 0.7 wanted (a 40-epoch try did not fit the loaded machine's time)
CONVERGED = {
    "classify": {"data": "shapes:4000", "model": "fastnet_small", "imgsz": 64, "epochs": 6, "batch": 64,
                 "lr": 0.1, "warmup_epochs": 0.5, "label_smoothing": 0.1, "augment": "light", "channels_last": True},
    "segment": {"data": "shapes:1500", "model": "unet_basic", "max_size": 64, "epochs": 16, "batch": 16,
                "optimizer": "adamw", "lr": 0.003, "weight_decay": 1e-4, "warmup_epochs": 0.5, "augment": "light",
                "loss": "ce+dice", "channels_last": True,
                "model_args": {"widths": [16, 32, 48, 64, 96], "decoder_channels": [96, 64, 32, 16, 16]}},
}


def train_converged(task: str, project: Path) -> Path:
    """The longer-trained model of ``task`` on the shapes (:data:`CONVERGED`), through ``cnnkit.train``."""
    import cnnkit

    recipe = dict(CONVERGED[task], task=task, project=str(project), name=f"{task}_converged", exist_ok=True,
                  verbose=False)
    return cnnkit.train(**recipe).run_dir / "best.pt"


def train_fashion(data: Path, project: Path, epochs: int) -> Path:
    from cnnkit.api import train_with
    from cnnkit.config import RECIPES, load_yaml, make_config

    values = {**load_yaml(RECIPES / "fashion_fast.yaml"), "task": "classify", "data": str(data),
              "project": str(project), "name": "fashion", "epochs": epochs, "exist_ok": True, "verbose": False}
    return train_with(make_config(values)).run_dir / "best.pt"


def class_score(module: Any, index: int) -> Callable:
    """(B, C, h, w) -> (B,) the softmax probability of class ``index``."""
    return lambda x: module(x).float().softmax(1)[:, index]


def region_score(module: Any, index: int, region: np.ndarray) -> Callable:
    """(B, C, h, w) -> (B,) class ``index``'s mean probability over ``region`` (h, w) bool."""
    import torch
    import torch.nn.functional as F

    def score(x: torch.Tensor) -> torch.Tensor:
        logits = module(x).float()
        if logits.shape[-2:] != x.shape[-2:]:
            logits = F.interpolate(logits, size=x.shape[-2:], mode="bilinear", align_corners=False)
        probs = logits.sigmoid()[:, 0] if logits.shape[1] == 1 else logits.softmax(1)[:, index]
        keep = torch.from_numpy(region).to(probs.device)
        return probs[:, keep].mean(1)

    return score


def resize_mask(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    from PIL import Image

    if mask.shape == size:
        return mask
    return np.asarray(Image.fromarray(mask.astype(np.uint8) * 255).resize(size[::-1], Image.NEAREST)) > 127


def shape_cases(model: Any, n: int) -> Iterator[tuple[Any, str, np.ndarray]]:
    """(PIL scene, class to explain, truth mask at scene size) for ``n`` new scenes."""
    from PIL import Image

    from cnnkit.data.synthetic import SHAPE_NAMES, make_scene

    for i in range(n):
        scene = make_scene(FIRST_SCENE + i, seed=SCENE_SEED, size=64)
        name = SHAPE_NAMES[scene.label]
        # classify: the large shape (drawn first, never hidden whole by the smaller ones); segment: the class
        mask = scene.instances[0] if model.meta.task == "classify" else scene.semantic == scene.label + 1
        yield Image.fromarray(scene.image), name, mask


def fashion_cases(model: Any, data: Path, n: int) -> Iterator[tuple[Any, str, None]]:
    """(PIL test image, its true class, no mask) for the first ``n`` test images."""
    from PIL import Image

    from cnnkit.data.idx import load_idx_split

    images, labels = load_idx_split(data, "val")
    for image, label in zip(images[:n], labels[:n]):
        yield Image.fromarray(image[..., 0], "L"), model.meta.classes[int(label)], None


def val_figure(weights: Path) -> dict | None:
    """The best epoch's validation figure of a run (its metrics.csv beside the weights): top1 or miou."""
    import csv

    path = Path(weights).parent / "metrics.csv"
    if not path.is_file():
        return None
    rows = list(csv.DictReader(path.open()))
    key = next((k for k in ("top1", "miou") if rows and k in rows[0]), None)
    if key is None:
        return None
    return {"metric": key, "best": max(float(r[key]) for r in rows), "epochs": len(rows)}


def make_score(model: Any, targets: Any, index: int, size: tuple[int, int]) -> Callable | None:
    """classify: the class's probability; segment: its mean over the predicted region (None: no region)."""
    if model.meta.task == "classify":
        return class_score(model.module, index)
    if targets.regions[0] is None or not np.any(targets.regions[0]):
        return None
    return region_score(model.module, index, resize_mask(np.asarray(targets.regions[0], bool), size))


def evaluate(model: Any, cases: Iterator, maps: dict[str, tuple[str, str]], steps: tuple[int, int],
             slow_images: int, progress: Callable[[dict], None] | None = None) -> dict:
    """Per map (name -> (method or baseline, layer)): lists of deletion AUC (black and ROAD fill), insertion
    AUC, pointing hits (strict and at Zhang et al.'s tolerance) and map seconds. scorecam and occlusion run on
    the first ``slow_images`` images only. ``steps``: the curves' steps, black/insertion and ROAD.
    ``progress`` gets the figures so far after every 10 images (a run cut short keeps them)."""
    from cnnkit.engine.task import ExplainRequest
    from cnnkit.errors import CnnkitError
    from cnnkit.explain.methods import compute_maps
    from cnnkit.metrics.faithfulness import centre_map, deletion_insertion, pointing_game, random_map

    module, classes = model.module, list(model.meta.classes)
    keys = ("deletion", "deletion_road", "insertion", "pointing", "pointing_tol", "seconds")
    rows: dict[str, dict[str, list]] = {m: {k: [] for k in keys} for m in maps}
    skipped = used = 0
    for i, (image, target, mask) in enumerate(cases):
        try:
            targets = model.task.explain_targets(module, image, ExplainRequest(target=target))
        except CnnkitError:  # segment: the class is predicted nowhere
            skipped += 1
            continue
        x = targets.inputs
        size = tuple(x.shape[-2:])
        score = make_score(model, targets, classes.index(target), size)
        if score is None:
            skipped += 1
            continue
        truth = None if mask is None else resize_mask(mask, size)
        # Zhang et al.: 15 px at 224 px, scaled to the working size
        tolerance = round(15 / 224 * min(size))
        for name, (method, layer) in maps.items():
            if method in ("scorecam", "occlusion") and used >= slow_images:
                continue
            start = time.perf_counter()
            if method in BASELINES:
                saliency = random_map(size, seed=i) if method == "random" else centre_map(size)
            else:
                saliency = compute_maps(module, targets, method, layer)[0]
            row = rows[name]
            row["seconds"].append(time.perf_counter() - start)
            curves = deletion_insertion(score, x, saliency, steps=steps[0], seed=i)
            row["deletion"].append(curves["deletion_auc"])
            row["insertion"].append(curves["insertion_auc"])
            # a sparse solve per point: ROAD's own grid of 10% steps, not the 33 points of the black curve
            road = deletion_insertion(score, x, saliency, steps=steps[1], seed=i, fill="road")
            row["deletion_road"].append(road["deletion_auc"])
            if truth is not None and truth.any():
                row["pointing"].append(pointing_game(saliency, truth))
                row["pointing_tol"].append(pointing_game(saliency, truth, tolerance=tolerance))
        used += 1
        result = {"rows": rows, "skipped": skipped, "used": used, "size": list(size), "tolerance": tolerance}
        if progress is not None and used % 10 == 0:
            progress(result)
    return {"rows": rows, "skipped": skipped, "used": used, "size": list(size) if used else None,
            "tolerance": tolerance if used else None}


def summarise(result: dict) -> dict:
    def stats(values: list) -> dict | None:
        if not values:
            return None
        v = np.asarray(values, dtype=np.float64)
        return {"mean": float(v.mean()), "sem": float(v.std(ddof=1) / np.sqrt(len(v))) if len(v) > 1 else 0.0,
                "n": len(v)}

    return {name: {key: stats(values) for key, values in row.items()} for name, row in result["rows"].items()}


def table(title: str, summary: dict, result: dict, elapsed: float) -> str:
    def cell(s: dict | None, percent: bool = False) -> str:
        if s is None:
            return "-"
        if percent:
            return f"{100 * s['mean']:.0f} ± {100 * s['sem']:.0f}%"
        return f"{s['mean']:.3f} ± {s['sem']:.3f}"

    lines = [f"\n### {title}: {result['used']} images at {result['size']} px, {result['skipped']} skipped, "
             f"{elapsed:.0f} s; pointing tolerance {result['tolerance']} px", "",
             "| map | n | deletion AUC, black (lower is better) | deletion AUC, ROAD | insertion AUC (higher is "
             "better) | pointing, strict | pointing, tolerance | s / map |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for name, s in summary.items():
        seconds = f"{s['seconds']['mean']:.3f}" if s["seconds"] else "-"
        n = s["deletion"]["n"] if s["deletion"] else 0
        lines.append(f"| {name} | {n} | {cell(s['deletion'])} | {cell(s['deletion_road'])} | {cell(s['insertion'])} "
                     f"| {cell(s['pointing'], True)} | {cell(s['pointing_tol'], True)} | {seconds} |")
    return "\n".join(lines)


def weights_for(key: str, args: argparse.Namespace, project: Path) -> Path:
    given = getattr(args, key.replace("-", "_"))
    if given:
        return given
    if key == "fashion":
        if not args.data.is_dir():
            raise SystemExit(f"{args.data}: Fashion-MNIST IDX folder not found; pass --data or --fashion")
        return train_fashion(args.data, project, args.fashion_epochs)
    if key.endswith("-converged"):
        return train_converged(key.split("-")[0], project)
    return train_demo(key, project)


def map_list(methods: list[str], extra: list[str], key: str) -> dict[str, tuple[str, str]]:
    """name -> (method, layer): the methods at their default layer, the baselines, and ``--extra-layer``'s
    Grad-CAM rows for ``key`` (``MODEL=LAYER``)."""
    maps = {m: (m, "") for m in methods}
    for item in extra:
        model_key, _, layer = item.partition("=")
        if model_key == key:
            maps[f"gradcam @ {layer}"] = ("gradcam", layer)
    return {**maps, **{b: (b, "") for b in BASELINES}}


def write(out: Path, report: dict, append: bool) -> None:
    if append and out.is_file():  # read just now: runs side by side each add their own models
        report = {**report, "models": {**json.loads(out.read_text()).get("models", {}), **report["models"]}}
    out.write_text(json.dumps(report, indent=2))


def recorder(report: dict, key: str, entry: dict, out: Path, append: bool) -> Callable[..., None]:
    """``record(result, done=False)``: ``key``'s figures so far into ``report`` and ``out`` (a run cut short
    keeps them); the table once done."""
    start = time.perf_counter()

    def record(result: dict, done: bool = False) -> None:
        elapsed = time.perf_counter() - start
        summary = summarise(result)
        if done:
            print(table(f"{key} ({entry['weights']})", summary, result, elapsed), flush=True)
        else:
            print(f"{key}: {result['used']} images, {elapsed:.0f} s", flush=True)
        report["models"][key] = {**entry, "eval_s": elapsed, "complete": done, "images": result["used"],
                                 "skipped": result["skipped"], "size": result["size"],
                                 "tolerance_px": result["tolerance"], "summary": summary}
        write(out, report, append)

    return record


def main() -> None:
    args = parse_args()
    import torch
    from common import machine  # benchmarks/common.py

    from cnnkit.api import load

    methods = [m for m in args.methods.split(",") if m]
    unknown = sorted(set(methods) - set(METHODS))
    if unknown:
        raise SystemExit(f"--methods: unknown {', '.join(unknown)}; choose from {', '.join(METHODS)}")
    wanted = [m for m in args.models.split(",") if m]
    print(f"machine: {machine()}", flush=True)
    report: dict[str, Any] = {"date": time.strftime("%Y-%m-%d"), "machine": machine(), "torch": torch.__version__,
                              "methods": methods, "steps": args.steps, "road_steps": args.road_steps,
                              "scene_seed": SCENE_SEED,
                              "slow_images": args.slow_images, "models": {}}
    with tempfile.TemporaryDirectory() as tmp:
        project = args.project or Path(tmp)
        for key in wanted:
            start = time.perf_counter()
            weights = weights_for(key, args, project)
            trained = time.perf_counter() - start
            model = load(weights, device="cpu")
            if key == "fashion":
                cases = fashion_cases(model, args.data, args.fashion_images)
            else:
                cases = shape_cases(model, args.images)
            val = val_figure(weights)
            print(f"\n{key}: validation {val}", flush=True)
            entry = {"weights": str(weights), "val": val, "train_s": trained}
            record = recorder(report, key, entry, args.out, args.append)
            result = evaluate(model, cases, map_list(methods, args.extra_layer, key),
                              (args.steps, args.road_steps), args.slow_images, record)
            record(result, done=True)
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()

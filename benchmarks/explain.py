"""How faithful cnnkit's explanations are: deletion and insertion AUC (Petsiuk et al., RISE, BMVC 2018) and
the pointing game (Zhang et al., Excitation Backprop, IJCV 2018), per method, against a random map and a
centre-bias map (``cnnkit.metrics.faithfulness``).

Three models: (a) the demo classifier and (b) the demo segmenter (trained as `cnnkit demo` trains them, or
given as checkpoints), on synthetic shape scenes they never trained on (another seed); (c) a Fashion-MNIST
classifier (the fast recipe, or a checkpoint) on the test images. Each image's map is made for one target:

- classify: the true class; score = its softmax probability; pointing game: a hit when the map's maximum lies
  on the large shape (the one that gives the scene its label);
- segment: the large shape's class; score = that class's mean probability over the pixels the model predicts
  as it in the untouched image (``ExplainTargets.regions``: the region stays fixed while pixels are deleted);
  pointing game: a hit on any pixel of that class (Zhang et al. count any instance of the cued category).
  An image where the model predicts none of the class is left out (counted as ``skipped``).

Deletion sets pixels to black, insertion starts from a blurred copy; curves of 33 points (``--steps``) at the
model's working size. Lower deletion AUC and higher insertion AUC are better.

    python benchmarks/explain.py --classify /tmp/demo6/classify/classify/best.pt \\
        --segment /tmp/demo6/segment/segment/best.pt --data ../shared/datasets/fashion-mnist
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
    p.add_argument("--data", type=Path, default=Path("../shared/datasets/fashion-mnist"),
                   help="Fashion-MNIST IDX folder (for --fashion's images and its training)")
    p.add_argument("--fashion-epochs", type=int, default=1, help="epochs of the fast recipe when training")
    p.add_argument("--models", default="classify,segment,fashion", help="which of classify,segment,fashion to run")
    p.add_argument("--methods", default=",".join(METHODS), help="comma-separated explanation methods")
    p.add_argument("--images", type=int, default=50, help="shape scenes per model")
    p.add_argument("--fashion-images", type=int, default=200, help="Fashion-MNIST test images")
    p.add_argument("--steps", type=int, default=32, help="points of each deletion/insertion curve, less one")
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


# "Trained to convergence" on the same shapes, at 64 px (the demo models' 32 px leaves a shape a few pixels):
# sized for a few minutes each on 2 CPU cores; their validation figures are printed and written to the JSON
CONVERGED = {
    "classify": {"data": "shapes:4000", "model": "fastnet_small", "imgsz": 64, "epochs": 15, "batch": 64,
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


def evaluate(model: Any, cases: Iterator, methods: list[str], steps: int) -> dict:
    """Per method and baseline: lists of deletion AUC, insertion AUC, pointing hits and map seconds."""
    from cnnkit.engine.task import ExplainRequest
    from cnnkit.errors import CnnkitError
    from cnnkit.explain.methods import compute_maps
    from cnnkit.metrics.faithfulness import centre_map, deletion_insertion, pointing_game, random_map

    module, classes = model.module, list(model.meta.classes)
    rows: dict[str, dict[str, list]] = {m: {"deletion": [], "insertion": [], "pointing": [], "seconds": []}
                                        for m in [*methods, *BASELINES]}
    skipped = 0
    for i, (image, target, mask) in enumerate(cases):
        try:
            targets = model.task.explain_targets(module, image, ExplainRequest(target=target))
        except CnnkitError:  # segment: the class is predicted nowhere
            skipped += 1
            continue
        x = targets.inputs
        size = tuple(x.shape[-2:])
        index = classes.index(target)
        if model.meta.task == "classify":
            score = class_score(module, index)
        elif targets.regions[0] is None or not np.any(targets.regions[0]):
            skipped += 1
            continue
        else:
            score = region_score(module, index, resize_mask(np.asarray(targets.regions[0], bool), size))
        truth = None if mask is None else resize_mask(mask, size)
        for name in rows:
            start = time.perf_counter()
            if name in BASELINES:
                saliency = random_map(size, seed=i) if name == "random" else centre_map(size)
            else:
                saliency = compute_maps(module, targets, name)[0]
            rows[name]["seconds"].append(time.perf_counter() - start)
            curves = deletion_insertion(score, x, saliency, steps=steps)
            rows[name]["deletion"].append(curves["deletion_auc"])
            rows[name]["insertion"].append(curves["insertion_auc"])
            if truth is not None and truth.any():
                rows[name]["pointing"].append(pointing_game(saliency, truth))
    return {"rows": rows, "skipped": skipped}


def summarise(result: dict) -> dict:
    def stats(values: list) -> dict | None:
        if not values:
            return None
        v = np.asarray(values, dtype=np.float64)
        return {"mean": float(v.mean()), "sem": float(v.std(ddof=1) / np.sqrt(len(v))) if len(v) > 1 else 0.0,
                "n": len(v)}

    return {name: {key: stats(values) for key, values in row.items()} for name, row in result["rows"].items()}


def table(title: str, summary: dict, skipped: int, elapsed: float) -> str:
    def cell(s: dict | None, percent: bool = False) -> str:
        if s is None:
            return "-"
        if percent:
            return f"{100 * s['mean']:.0f}% ({s['n']})"
        return f"{s['mean']:.3f} ± {s['sem']:.3f}"

    lines = [f"\n### {title}: {elapsed:.0f} s, {skipped} images skipped", "",
             "| map | deletion AUC (lower is better) | insertion AUC (higher is better) | pointing game | s / map |",
             "| --- | --- | --- | --- | --- |"]
    for name, s in summary.items():
        seconds = f"{s['seconds']['mean']:.3f}" if s["seconds"] else "-"
        lines.append(f"| {name} | {cell(s['deletion'])} | {cell(s['insertion'])} | "
                     f"{cell(s['pointing'], percent=True)} | {seconds} |")
    return "\n".join(lines)


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
                              "methods": methods, "steps": args.steps, "scene_seed": SCENE_SEED, "models": {}}
    with tempfile.TemporaryDirectory() as tmp:
        project = args.project or Path(tmp)
        for key in wanted:
            start = time.perf_counter()
            if key == "fashion":
                if not args.fashion and not args.data.is_dir():
                    raise SystemExit(f"{args.data}: Fashion-MNIST IDX folder not found; pass --data or --fashion")
                weights = args.fashion or train_fashion(args.data, project, args.fashion_epochs)
            else:
                weights = getattr(args, key) or train_demo(key, project)
            trained = time.perf_counter() - start
            model = load(weights, device="cpu")
            if key == "fashion":
                cases = fashion_cases(model, args.data, args.fashion_images)
            else:
                cases = shape_cases(model, args.images)
            start = time.perf_counter()
            result = evaluate(model, cases, methods, args.steps)
            elapsed = time.perf_counter() - start
            summary = summarise(result)
            print(table(f"{key} ({weights})", summary, result["skipped"], elapsed), flush=True)
            report["models"][key] = {"weights": str(weights), "train_s": trained, "eval_s": elapsed,
                                     "skipped": result["skipped"], "summary": summary}
    args.out.write_text(json.dumps(report, indent=2))
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()

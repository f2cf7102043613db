"""Segmentation from seeds and without labels (cnnkit.grow) side by side with classical methods.

Data: CamVid val (11 classes, Void ignored) and 50 fixed DSB2018 images (nucleus vs background; instances).
Every method gets the same seeds: N pixels per class per image (fixed numpy seed), uniform inside the class's
mask eroded by 5 px (grow_data.py).

- seeded: ours (one ``grow_images`` call per data set), random walker (beta 30 and 130, mode "bf"), marker
  watershed on the Sobel edges of the grey image. mIoU and pixel accuracy from one confusion over the data
  set, and "seeds lost": seed pixels whose output class differs from the seed.
- instances (DSB2018): one click per nucleus + N background seeds. Ours grows nucleus/background, then splits
  the foreground by a watershed on its distance transform from the clicks; random walker and watershed give
  each click its own label. Mean IoU of each true nucleus with the instance grown from its click (0 if none).
- unsupervised: ours (K = the class count), SLIC + k-means on mean Lab colour, Felzenszwalb; segments matched
  to classes per image (one-to-one Hungarian: the headline; many-to-one: an upper bound).
  "ours, one matching" matches ours' segment ids once for the whole data set (they are shared).
Seconds per image: the whole data set timed, divided by its images.

    python benchmarks/grow.py --camvid ../shared/datasets/camvid --dsb ../shared/datasets/dsb2018 [--images N]
"""

from __future__ import annotations

import argparse
import ast
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from scipy import ndimage
from skimage.color import rgb2gray, rgb2lab
from skimage.filters import sobel
from skimage.segmentation import felzenszwalb, random_walker, slic, watershed
from sklearn.cluster import KMeans

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine  # noqa: E402
from grow_data import DataSet, class_seeds, instance_seeds, load_camvid, load_dsb, nucleus_ious  # noqa: E402

from cnnkit.metrics.matching import confusion, scores, unsupervised_scores  # noqa: E402

METHODS = ("ours", "rw30", "rw130", "watershed", "slic", "felz")
SEEDED = ("ours", "rw30", "rw130", "watershed")
UNSUPERVISED = ("ours", "slic", "felz")
TASKS = ("seeded", "instances", "unsupervised")
LOG: list[Path] = []


def say(text: str) -> None:
    print(text, flush=True)
    for path in LOG:
        with path.open("a") as f:
            f.write(text + "\n")


def grow(images: list[np.ndarray], seeds: list[np.ndarray] | None, options: dict) -> list[np.ndarray]:
    """cnnkit.grow on all ``images`` in one call: class indices (seeded) or segment ids (unsupervised)."""
    from cnnkit.grow.method import GrowOptions, grow_images

    return [labels for labels, _ in grow_images(images, seeds=seeds, options=GrowOptions(**options))]


def walk(image: np.ndarray, markers: np.ndarray, beta: float) -> np.ndarray:
    """Random walker labelled with the markers' own values (skimage returns their ranks 1..n)."""
    values = np.unique(markers[markers > 0])
    if len(values) == 1:
        return np.full(markers.shape, values[0])
    out = random_walker(image, markers, beta=beta, mode="bf", channel_axis=-1)
    return values[np.clip(out, 1, None) - 1]


def edge_watershed(image: np.ndarray, markers: np.ndarray) -> np.ndarray:
    return watershed(sobel(rgb2gray(image)), markers)


def from_markers(method: str, image: np.ndarray, markers: np.ndarray) -> np.ndarray:
    if method == "watershed":
        return edge_watershed(image, markers)
    return walk(image, markers, beta=float(method[2:]))


def timed(fn, images: int) -> tuple:
    start = time.perf_counter()
    value = fn()
    return value, (time.perf_counter() - start) / max(images, 1)


def seeded_rows(data: DataSet, per_class: int, methods: list[str], grow_options: dict) -> list[dict]:
    seeds = class_seeds(data, per_class)
    n, rows = len(data.classes), []
    for method in [m for m in methods if m in SEEDED]:
        if method == "ours":
            preds, seconds = timed(lambda: grow(data.images, seeds, grow_options), len(data.images))
        else:
            preds, seconds = timed(lambda m=method: [from_markers(m, im, s) - 1 for im, s in zip(data.images, seeds)],
                                   len(data.images))
        conf = sum(confusion(p, t, n, n, data.ignore_index) for p, t in zip(preds, data.truths))
        result = scores(conf)
        lost = sum(int((p[s > 0] != s[s > 0] - 1).sum()) for p, s in zip(preds, seeds))
        rows.append({"dataset": data.name, "task": "seeded", "seeds_per_class": per_class, "method": method,
                     "miou": result["miou"], "pixel_acc": result["pixel_acc"], "iou": result["iou"].tolist(),
                     "seeds": int(sum((s > 0).sum() for s in seeds)), "seeds_lost": lost,
                     "seconds_per_image": seconds, "images": len(data.images)})
    return rows


def split_foreground(foreground: np.ndarray, click: np.ndarray) -> np.ndarray:
    """Nucleus instances: watershed of the negated distance transform from the clicks, inside the foreground."""
    return watershed(-ndimage.distance_transform_edt(foreground), markers=click * foreground, mask=foreground)


def instance_predictions(method: str, images: list[np.ndarray], seeds: list[tuple], grow_options: dict) -> list:
    if method == "ours":
        grown = grow(images, [s for s, _ in seeds], grow_options)
        return [split_foreground(g == 1, c) for g, (_, c) in zip(grown, seeds)]
    out = []
    for image, (seed, click) in zip(images, seeds):
        markers = np.where(click > 0, click + 1, (seed == 1).astype(np.int64))  # background 1, nucleus i: i + 1
        out.append(np.clip(from_markers(method, image, markers) - 1, 0, None))
    return out


def instance_rows(data: DataSet, per_class: int, methods: list[str], grow_options: dict) -> list[dict]:
    assert data.instances is not None
    seeds = instance_seeds(data, per_class)
    rows = []
    for method in [m for m in methods if m in SEEDED]:
        preds, seconds = timed(lambda m=method: instance_predictions(m, data.images, seeds, grow_options),
                               len(data.images))
        ious = np.concatenate([nucleus_ious(p, t) for p, t in zip(preds, data.instances)])
        lost = sum(int((p[c > 0] != c[c > 0]).sum() + (p[s == 1] != 0).sum())
                   for p, (s, c) in zip(preds, seeds))
        rows.append({"dataset": data.name, "task": "instances", "background_seeds": per_class, "method": method,
                     "nucleus_iou": float(ious.mean()), "nuclei": int(ious.size),
                     "seeds": int(sum((s > 0).sum() for s, _ in seeds)), "seeds_lost": lost,
                     "seconds_per_image": seconds, "images": len(data.images)})
    return rows


def slic_kmeans(image: np.ndarray, k: int) -> np.ndarray:
    """SLIC superpixels (~400) clustered by mean Lab colour with k-means, fitted on this image."""
    superpixels = slic(image, n_segments=400, compactness=10, start_label=0)
    ids, inverse = np.unique(superpixels, return_inverse=True)
    lab = rgb2lab(image).reshape(-1, 3)
    counts = np.bincount(inverse.ravel())
    means = np.stack([np.bincount(inverse.ravel(), lab[:, c]) / counts for c in range(3)], 1)
    clusters = KMeans(min(k, len(ids)), n_init=4, random_state=0).fit_predict(means)
    return clusters[inverse].reshape(superpixels.shape)


def unsupervised_predictions(method: str, images: list[np.ndarray], k: int, grow_options: dict) -> list:
    if method == "ours":
        return grow(images, None, {**grow_options, "max_segments": k})
    if method == "slic":
        return [slic_kmeans(im, k) for im in images]
    return [felzenszwalb(im, scale=200, sigma=0.8, min_size=50) for im in images]


def unsupervised_rows(data: DataSet, methods: list[str], grow_options: dict) -> list[dict]:
    k, rows = len(data.classes), []
    for method in [m for m in methods if m in UNSUPERVISED]:
        preds, seconds = timed(lambda m=method: unsupervised_predictions(m, data.images, k, grow_options),
                               len(data.images))
        segments = float(np.mean([len(np.unique(p)) for p in preds]))
        for name, per_image in [(method, True)] + ([("ours, one matching", False)] if method == "ours" else []):
            result = unsupervised_scores(preds, data.truths, k, data.ignore_index, per_image=per_image)
            one, many = result["one_to_one"], result["many_to_one"]
            rows.append({"dataset": data.name, "task": "unsupervised", "method": name, "classes": k,
                         "miou": one["miou"], "pixel_acc": one["pixel_acc"], "unmatched": one["unmatched"],
                         "miou_many_to_one": many["miou"], "pixel_acc_many_to_one": many["pixel_acc"],
                         "iou": one["iou"].tolist(), "segments_per_image": segments,
                         "seconds_per_image": seconds, "images": len(data.images)})
    return rows


COLUMNS = {
    "seeded": [("data set", "dataset"), ("seeds/class", "seeds_per_class"), ("method", "method"),
               ("mIoU", "miou"), ("pixel acc", "pixel_acc"), ("seeds lost", "seeds_lost"),
               ("s/img", "seconds_per_image")],
    "instances": [("data set", "dataset"), ("bg seeds", "background_seeds"), ("method", "method"),
                  ("nucleus IoU", "nucleus_iou"), ("nuclei", "nuclei"), ("seeds lost", "seeds_lost"),
                  ("s/img", "seconds_per_image")],
    "unsupervised": [("data set", "dataset"), ("method", "method"), ("mIoU 1:1", "miou"),
                     ("pixel acc 1:1", "pixel_acc"), ("mIoU many:1", "miou_many_to_one"),
                     ("pixel acc many:1", "pixel_acc_many_to_one"), ("segments/img", "segments_per_image"),
                     ("s/img", "seconds_per_image")],
}


def cell(value) -> str:
    if isinstance(value, float):
        return f"{value:.3f}" if abs(value) < 1 else f"{value:.2f}"
    return str(value)


def table(rows: list[dict]) -> str:
    parts = []
    for task, columns in COLUMNS.items():
        chosen = [r for r in rows if r["task"] == task]
        if chosen:
            lines = ["| " + " | ".join(h for h, _ in columns) + " |", "|" + "---|" * len(columns)]
            lines += ["| " + " | ".join(cell(r[k]) for _, k in columns) + " |" for r in chosen]
            parts.append(f"### {task}\n\n" + "\n".join(lines))
    return "\n\n".join(parts)


def parse_options(pairs: list[str]) -> dict:
    """KEY=VALUE pairs for GrowOptions; values as Python literals where they parse, else strings."""
    out = {}
    for pair in pairs:
        key, _, value = pair.partition("=")
        try:
            out[key] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            out[key] = value
    return out


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--camvid", default="../shared/datasets/camvid", help="CamVid root; '' to skip")
    p.add_argument("--dsb", default="../shared/datasets/dsb2018", help="DSB2018 root; '' to skip")
    p.add_argument("--images", type=int, default=0, help="at most this many images per data set [0: all]")
    p.add_argument("--methods", default=",".join(METHODS), help=f"a subset of {','.join(METHODS)}")
    p.add_argument("--tasks", default=",".join(TASKS), help=f"a subset of {','.join(TASKS)}")
    p.add_argument("--seeds-per-class", default="1,5,20", help="seeds per class per image, one run each")
    p.add_argument("--grow", nargs="*", default=[], metavar="KEY=VALUE", help="extra GrowOptions for ours")
    p.add_argument("--threads", type=int, default=2, help="torch threads")
    p.add_argument("--out", default="benchmarks/grow.json", help="JSON results; the log goes beside it (.log)")
    args = p.parse_args()
    args.methods = [m for m in args.methods.split(",") if m]
    args.tasks = [t for t in args.tasks.split(",") if t]
    args.seeds_per_class = [int(n) for n in args.seeds_per_class.split(",") if n]
    unknown = sorted(set(args.methods) - set(METHODS)) + sorted(set(args.tasks) - set(TASKS))
    if unknown:
        p.error(f"unknown methods or tasks: {', '.join(unknown)}")
    if "ours" in args.methods:
        try:
            import cnnkit.grow.method  # noqa: F401
        except ImportError as e:
            p.error(f"ours needs cnnkit.grow.method ({e}); pass --methods without ours")
    return args


def run_data_set(data: DataSet, args: argparse.Namespace, options: dict, done: list[dict], save) -> None:
    say(f"{data.name}: {len(data.images)} images, {len(data.classes)} classes")
    jobs = []
    if "seeded" in args.tasks:
        jobs += [lambda n=n: seeded_rows(data, n, args.methods, options) for n in args.seeds_per_class]
    if "instances" in args.tasks and data.instances is not None:
        jobs += [lambda n=n: instance_rows(data, n, args.methods, options) for n in args.seeds_per_class]
    if "unsupervised" in args.tasks:
        jobs.append(lambda: unsupervised_rows(data, args.methods, options))
    for job in jobs:
        for row in job():
            done.append(row)
            say(json.dumps({k: v for k, v in row.items() if k != "iou"}))
            save()


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    LOG.append(out.with_suffix(".log"))
    LOG[0].write_text("")
    options = parse_options(args.grow)
    results: dict = {"machine": machine(), "date": time.strftime("%Y-%m-%d %H:%M"),
                     "args": dict(vars(args)), "rows": []}
    say(f"machine: {results['machine']}")

    def save() -> None:
        out.write_text(json.dumps(results, indent=2))

    loaders = [(args.camvid, load_camvid), (args.dsb, load_dsb)]
    for root, load in loaders:
        if root:
            run_data_set(load(Path(root), args.images), args, options, results["rows"], save)
    save()
    say("\n" + table(results["rows"]))


if __name__ == "__main__":
    main()

"""Annotation by clicks: a click model, cnnkit.grow from click seeds and scikit-image's random walker.

Every method answers the same simulated user (``cnnkit.metrics.clicks.simulate``: RITM's clicker, Sofiiuk et
al. 2021, up to 20 clicks, stopping at 0.90 IoU after at least 5), one object at a time:

- model: a click model checkpoint (``cnnkit train click``; ``--weights``), through
  ``cnnkit.annotate.ModelClicker`` (the clicks, disks of 5 px, and its previous mask in, the mask out);
- seeds: ``cnnkit.annotate.SeedClicker`` (cnnkit.grow, positive click disks seeding the object and negative
  ones and the image border the background; after a negative click the answer is cut to the previous mask),
  what ``cnnkit annotate`` uses
  without a model;
- walker: ``skimage.segmentation.random_walker`` (beta 130, mode "bf", on the RGB image in 0..1) with the
  same seeds: positive disks label 1, negative disks and the image border label 2 (``--walker-border
  until-negative``: the border only until the first negative click); the previous mask unused.

Reported per method: NoC@85 and NoC@90 (mean clicks to reach 0.85 / 0.90 IoU, 20 when never), IoU after 1,
3 and 5 clicks, fail@85 (objects never reaching 0.85) and the mean seconds one answer takes (the clicker's
call alone). Pixels the ground truth ignores count neither in the IoU nor for the clicker.

Data (clicks_data.py): DSB2018's held-out 10% (``split-dsb``; each nucleus an object) and CamVid val (each
connected region of a class, Unlabelled ignored, regions under ``--min-area`` px skipped); ``--objects N``
draws N objects at random (``--seed``) so a run fits minutes on 2 cores.

    python benchmarks/clicks.py split-dsb ../shared/dsb2018_split [--dsb ../shared/datasets/dsb2018]
    python benchmarks/clicks.py run --data ../shared/dsb2018_split/val --weights dsb_click.pt
    python benchmarks/clicks.py run --data ../shared/datasets/camvid/val --layout segment --ignore 11 \\
        --background '' --weights camvid_click.pt
    python benchmarks/clicks.py run --data synthetic:4 --objects 3 --max-clicks 3   # smoke test
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from clicks_data import ObjectSet, load_folder, load_synthetic, split_dsb  # noqa: E402
from common import machine  # noqa: E402
from grow import parse_options  # noqa: E402

from cnnkit.metrics.clicks import CLICK_RADIUS, MAX_CLICKS, Click, NocMetrics, click_maps, simulate  # noqa: E402

METHODS = ("model", "seeds", "walker")
Answer = Callable[[np.ndarray, Sequence[Click], "np.ndarray | None"], np.ndarray]


class WalkerClicker:
    """The random walker (Grady, PAMI 2006; scikit-image) seeded by the clicks, as a Clicker."""

    name = "walker"

    def __init__(self, beta: float = 130.0, mode: str = "bf", radius: float = CLICK_RADIUS,
                 border: str = "always"):
        self.beta, self.mode, self.radius, self.border = beta, mode, radius, border

    def seeds(self, clicks: Sequence[Click], shape: tuple[int, int]) -> np.ndarray:
        """(H, W) int: 0 unknown, 1 object, 2 background; a later click's disk over an earlier one's."""
        labels = np.zeros(shape, np.int32)
        for c in clicks:
            disk = click_maps([c], shape, self.radius)[0 if c.positive else 1] > 0
            labels[disk] = 1 if c.positive else 2
        if self.border == "always" or not any(not c.positive for c in clicks):
            border = np.ones(shape, bool)
            border[1:-1, 1:-1] = False
            labels[border & (labels == 0)] = 2
        return labels

    def __call__(self, image: np.ndarray, clicks: Sequence[Click], prev: np.ndarray | None) -> np.ndarray:
        from skimage.segmentation import random_walker

        labels = self.seeds(clicks, image.shape[:2])
        if not (labels == 2).any():
            return labels != 0  # every pixel seeded as the object
        if not (labels == 1).any():
            return np.zeros(image.shape[:2], bool)
        out = random_walker(image.astype(np.float64) / 255, labels, beta=self.beta, mode=self.mode,
                            channel_axis=-1)
        return np.asarray(out) == 1


def make_clicker(method: str, args: argparse.Namespace) -> Answer:
    if method == "walker":
        return WalkerClicker(beta=args.beta, mode=args.walker_mode, border=args.walker_border)
    from cnnkit.annotate.clickers import SeedClicker, load_clicker  # written against issue 28's contract

    if method == "seeds":
        return SeedClicker(**parse_options(args.seed_options))
    return load_clicker(args.weights)


class Timed:
    """One method on one image, as ``simulate`` calls it, timing every answer."""

    def __init__(self, answer: Answer):
        self.answer, self.image = answer, np.zeros((0, 0, 3), np.uint8)
        self.seconds, self.calls = 0.0, 0

    def __call__(self, clicks: list[Click], prev: np.ndarray | None) -> np.ndarray:
        start = time.perf_counter()
        mask = self.answer(self.image, clicks, prev)
        self.seconds += time.perf_counter() - start
        self.calls += 1
        return mask


def score_method(data: ObjectSet, targets: list[tuple[int, int, int]], answer: Answer, args: argparse.Namespace,
                 label: str) -> tuple[dict, list[dict]]:
    """simulate() on every target: the NoC figures and seconds per answer, and one row per object."""
    metrics, rows = NocMetrics(args.max_clicks), []
    segment, image_index = Timed(answer), -1
    for n, (i, value, area) in enumerate(targets, start=1):
        if i != image_index:
            image_index, segment.image = i, data.image(i)
        gt = data.objects[i] == value
        ious = simulate(segment, gt, args.max_clicks, args.stop_iou, args.min_clicks, valid=data.valid[i])
        metrics.update(ious[None], None)
        rows.append({"data": data.name, "method": label, "image": data.image_name(i), "object": value,
                     "area": area, **{f"iou_{k + 1}": round(float(v), 4) for k, v in enumerate(ious)}})
        if n % 10 == 0 or n == len(targets):
            print(f"  {label}: {n}/{len(targets)} objects, {segment.seconds / max(segment.calls, 1):.3f} s per "
                  "answer", file=sys.stderr, flush=True)
    summary = {"data": data.name, "method": label, **metrics.compute(),
               "s_per_click": segment.seconds / max(segment.calls, 1), "answers": segment.calls}
    return summary, rows


def choose(targets: list[tuple[int, int, int]], n: int, seed: int) -> list[tuple[int, int, int]]:
    """``n`` targets drawn at random by ``seed`` (0: all), in image order so each image is read once."""
    if not n or n >= len(targets):
        return targets
    picked = np.random.default_rng(seed).choice(len(targets), n, replace=False)
    return [targets[k] for k in sorted(picked)]


def markdown(summaries: list[dict]) -> str:
    head = ["data", "method", "objects", "NoC@85", "NoC@90", "IoU@1", "IoU@3", "IoU@5", "fail@85", "s/click"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for s in summaries:
        lines.append(f"| {s['data']} | {s['method']} | {int(s['objects'])} | {s['noc85']:.2f} | {s['noc90']:.2f} | "
                     f"{s['iou@1']:.3f} | {s['iou@3']:.3f} | {s['iou@5']:.3f} | {s['fail85']:.1%} | "
                     f"{s['s_per_click']:.3f} |")
    return "\n".join(lines)


def write_csv(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(dict.fromkeys(k for r in rows for k in r)))
        writer.writeheader()
        writer.writerows(rows)


def load_data(args: argparse.Namespace) -> ObjectSet:
    if args.data.startswith("synthetic"):
        _, _, n = args.data.partition(":")
        return load_synthetic(int(n or 8), seed=args.seed)
    background = tuple(int(c) for c in args.background.split(",") if c.strip())
    return load_folder(Path(args.data), args.layout, args.images, background, args.ignore)


def run(args: argparse.Namespace) -> None:
    import torch

    torch.set_num_threads(args.threads)
    data = load_data(args)
    targets = choose(data.targets(args.min_area), args.objects, args.seed)
    print(f"machine: {machine()}", file=sys.stderr)
    print(f"{data.name}: {len(data.sources)} images, {len(targets)} objects of at least {args.min_area} px",
          file=sys.stderr, flush=True)
    summaries, rows = [], []
    for method in args.methods:
        summary, objects = score_method(data, targets, make_clicker(method, args), args, method)
        summaries.append(summary)
        rows += objects
    out = Path(args.out)
    write_csv(out, summaries)
    write_csv(out.with_name(out.stem + "_objects.csv"), rows)
    print(markdown(summaries))
    print(f"\n(CSV: {out}, per object: {out.with_name(out.stem + '_objects.csv')})", file=sys.stderr)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("split-dsb", help="hold out 10%% of DSB2018's images: OUT/train, OUT/val (symbolic links)")
    s.add_argument("out", type=Path)
    s.add_argument("--dsb", type=Path, default=Path("../shared/datasets/dsb2018"), help="DSB2018 root")
    s.add_argument("--fraction", type=float, default=0.1, help="fraction of the images held out [0.1]")
    s.add_argument("--seed", type=int, default=0, help="the permutation's seed [0]")
    r = sub.add_parser("run", help="score the methods on one data set")
    r.add_argument("--data", required=True, help="a folder with images/ and masks/, or synthetic[:N]")
    r.add_argument("--layout", choices=("instance", "segment"), default="instance",
                   help="masks are instance ids (each an object) or class indices (each region an object)")
    r.add_argument("--background", default="0", help="segment layout: class indices that are not objects ('')")
    r.add_argument("--ignore", type=int, default=None, help="mask value ignored (CamVid: 11) [none]")
    r.add_argument("--min-area", type=int, default=100, help="skip objects under this many px [100]")
    r.add_argument("--images", type=int, default=0, help="the first N images by name [0: all]")
    r.add_argument("--objects", type=int, default=30, help="objects drawn at random [30; 0: all]")
    r.add_argument("--seed", type=int, default=0, help="the draw's seed (and synthetic scenes') [0]")
    r.add_argument("--methods", default=None, help=f"a subset of {','.join(METHODS)} [all; without --weights "
                   "all but model]")
    r.add_argument("--weights", default=None, help="the click model's checkpoint (method model)")
    r.add_argument("--seed-options", nargs="*", default=[], metavar="KEY=VALUE", help="SeedClicker's options")
    r.add_argument("--beta", type=float, default=130.0, help="random walker's beta [130]")
    r.add_argument("--walker-mode", default="bf", help="random walker's solver [bf]")
    r.add_argument("--walker-border", choices=("until-negative", "always"), default="always",
                   help="seed the image border as background always (as SeedClicker does) or until the first "
                   "negative click [always]")
    r.add_argument("--max-clicks", type=int, default=MAX_CLICKS, help=f"clicks per object [{MAX_CLICKS}]")
    r.add_argument("--stop-iou", type=float, default=0.90, help="stop once this IoU is reached [0.90]")
    r.add_argument("--min-clicks", type=int, default=5, help="clicks made before stopping [5]")
    r.add_argument("--threads", type=int, default=2, help="torch threads [2]")
    r.add_argument("--out", default="benchmarks/clicks.csv", help="summary CSV; per object beside it")
    args = p.parse_args(argv)
    if args.command == "run":
        default = list(METHODS) if args.weights else [m for m in METHODS if m != "model"]
        args.methods = [m for m in args.methods.split(",") if m] if args.methods else default
        unknown = sorted(set(args.methods) - set(METHODS))
        if unknown:
            p.error(f"unknown methods: {', '.join(unknown)}; choose from {','.join(METHODS)}")
        if "model" in args.methods and not args.weights:
            p.error("method model needs --weights CLICK_MODEL.pt (cnnkit train click)")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.command == "split-dsb":
        train, val = split_dsb(args.dsb, args.out, args.fraction, args.seed)
        print(f"{args.out}: train {len(train)} images, val {len(val)} images (seed {args.seed})")
        return
    run(args)


if __name__ == "__main__":
    main()

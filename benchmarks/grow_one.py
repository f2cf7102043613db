"""One 360x480 CamVid val image alone (no folder to share the training with): seconds for `cnnkit segment`'s
method with 5 seeds a class and without seeds, against scikit-image's random walker (mode bf, beta 130)
with the same seeds; best of 3 each, side by side in one process.

    python benchmarks/grow_one.py --camvid ../shared/datasets/camvid
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
from skimage.segmentation import random_walker

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine  # noqa: E402
from grow_data import CAMVID_VOID, draw_seeds, load_camvid  # noqa: E402

from cnnkit.grow.method import GrowOptions, grow_images  # noqa: E402


def best_of(runs: int, fn) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--camvid", default="../shared/datasets/camvid")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(2)
    data = load_camvid(Path(args.camvid), 1)
    image, truth = data.images[0], data.truths[0]
    seeds = draw_seeds(truth, list(range(CAMVID_VOID)), 5, np.random.default_rng(0))
    figures = {
        "ours, 5 seeds a class": best_of(args.runs, lambda: grow_images([image], [seeds], CAMVID_VOID, GrowOptions())),
        "ours, no seeds (K=11)": best_of(args.runs, lambda: grow_images([image], None, 0,
                                                                        GrowOptions(max_segments=CAMVID_VOID))),
        "random walker bf b130, 5 seeds a class": best_of(args.runs, lambda: random_walker(
            image, seeds, beta=130, mode="bf", channel_axis=-1)),
    }
    print(f"{machine()}; one {image.shape[0]}x{image.shape[1]} image, best of {args.runs}")
    for name, seconds in figures.items():
        print(f"  {name}: {seconds:.2f} s")


if __name__ == "__main__":
    main()

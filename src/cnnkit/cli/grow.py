"""``cnnkit segment``: masks for a folder of images without any, from a few seeds per class or from nothing."""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cnnkit.data.images import set_max_pixels
from cnnkit.errors import CnnkitError
from cnnkit.files import next_free
from cnnkit.log import LOGGER

EXAMPLES = """examples:
  cnnkit segment photos/                                   (segments found without labels, ids shared by the folder)
  cnnkit segment photos/ --max-segments 4
  cnnkit segment photos/ --seeds seeds/ --classes sky,road,tree   (seeds/<image stem>.png|.json|.csv)
  cnnkit segment cell.png --seeds clicks.csv               (CSV of x,y,class)
then: cnnkit train segment --data runs/segments/exp        (uncertain pixels are 255: ignored)"""


def cmd_segment(args: argparse.Namespace) -> int:
    import torch

    from cnnkit.grow.segments import segment_images, write_dataset

    set_max_pixels(args.max_pixels)
    if args.seeds and args.max_segments is not None:
        raise CnnkitError("--max-segments is for segments found without seeds; with --seeds the classes are the "
                          "seeds' own: drop one of the two")
    out = Path(args.out) if args.out else next_free(Path("runs") / "segments" / "exp")
    if out.is_dir() and any(out.iterdir()):  # old masks beside new ones would train as one data set
        raise CnnkitError(f"{out}: already holds files; choose a new --out (or leave it out: runs/segments/exp2, ...)")
    if args.threads:
        torch.set_num_threads(args.threads)
    start = time.perf_counter()
    results = segment_images(args.sources, seeds=args.seeds or None, classes=args.classes or None,
                             skip_bad=args.skip_bad, max_segments=args.max_segments or 8, side=args.side,
                             iterations=args.iterations, seed=args.seed, refine=not args.no_refine)
    seconds = time.perf_counter() - start
    write_dataset(results, out, args.min_confidence)
    ignored = sum(float((r["confidence"] < args.min_confidence).mean()) for r in results) / len(results)
    if ignored > 0.5:
        LOGGER.warning(f"warning: {ignored:.0%} of the pixels are below --min-confidence {args.min_confidence} and "
                       "written as 255 (ignored by training); lower it to keep more")
    for r in results[:20]:
        seeds = f", {r['seeded_pixels']} seeded pixels kept" if r["seeded_pixels"] else ""
        print(f"{Path(r.path).name if r.path else 'image'}: {r.view.describe(r)}, confidence "
              f"{r['confidence'].mean():.2f}{seeds}")
    if len(results) > 20:
        print(f"... and {len(results) - 20} more (segments.csv)")
    classes = results[0].meta.classes
    kind = "classes" if args.seeds else "segments"
    print(f"{len(results)} image(s), {len(classes)} {kind} ({', '.join(classes)}) in {seconds:.1f} s "
          f"({seconds / len(results):.2f} s an image)")
    print(f"wrote {out}: images/, masks/ (255 below confidence {args.min_confidence}), confidence/, overlays/, "
          "classes.csv, segments.csv")
    print(f"next: cnnkit train segment --data {out}")
    return 0


def add_segment_parser(p: argparse.ArgumentParser, bounded: Callable[..., Callable[[str], Any]]) -> None:
    """The flags of ``cnnkit segment``; ``bounded(kind, low, high)`` makes a range-checked argument type."""
    from cnnkit.data.images import DEFAULT_MAX_PIXELS

    p.epilog = EXAMPLES
    p.add_argument("sources", nargs="+", metavar="SOURCE", help="image files, folders or globs")
    p.add_argument("--seeds", default="", help="seeds: a PNG of class numbers (0 = unknown, 1..C), a JSON/CSV of "
                                               "points (x, y, class[, radius]), or a folder of them named after "
                                               "the images; without: segments are found without labels")
    p.add_argument("--classes", default="", help="class names in seed-number order: a,b,c or a file (one per line, "
                                                 "or index,name,r,g,b); default: the names in the seed files")
    p.add_argument("--max-segments", type=bounded(int, 2, 254), default=None,
                   help="without seeds: at most this many segments over the folder (fewer if the images hold fewer) "
                        "[default: 8]")
    p.add_argument("--min-confidence", type=bounded(float, 0.0, 1.0), default=0.5,
                   help="pixels below this confidence are 255 (ignored by cnnkit train segment) in masks/ "
                        "[default: 0.5]")
    p.add_argument("--out", default="", help="output folder [default: runs/segments/exp, exp2, ...]")
    p.add_argument("--side", type=bounded(int, 16), default=128,
                   help="working resolution: the long side (pixels) [default: 128]")
    p.add_argument("--iterations", type=bounded(int, 1), default=200,
                   help="training steps at least; a large folder takes 16 passes over its images "
                        "[default: 200]")
    p.add_argument("--no-refine", action="store_true", help="skip the superpixel snapping of segment edges")
    p.add_argument("--seed", type=bounded(int, 0), default=0, help="random seed [default: 0]")
    p.add_argument("--threads", type=bounded(int, 0), default=0, help="CPU threads; 0 = torch's default")
    p.add_argument("--skip-bad", action="store_true", help="skip unreadable images with a warning")
    p.add_argument("--max-pixels", type=bounded(int, 1), default=DEFAULT_MAX_PIXELS,
                   help="refuse images with more pixels than this (decompression bombs)")

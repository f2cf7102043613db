"""``cnnkit report RUN``: write a run folder's report.html again (training writes it when it ends)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

EXAMPLES = """examples:
  cnnkit report runs/classify/exp                 (runs/classify/exp/report.html)
  cnnkit report runs/segment/exp --images 500     (score more validation images to find the worst)"""


def add_report_parser(p: argparse.ArgumentParser, bounded: Callable[..., Callable[[str], Any]]) -> None:
    p.add_argument("run", metavar="RUN", help="a run folder of `cnnkit train` (holding best.pt or last.pt)")
    p.add_argument("--images", type=bounded(int, 0), default=200,
                   help="validation images scored by the task's loss to find the worst, spread over the split "
                        "(0: no worst images or explanations)")
    p.add_argument("--show", type=bounded(int, 1), default=8, help="worst images shown")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N, N (a CUDA index) or mps")


def cmd_report(args: argparse.Namespace) -> int:
    from cnnkit.report import write_report

    print(write_report(args.run, images=args.images, show=args.show, device=args.device))
    return 0

"""``cnnkit models``: the registry as a table, in well under two seconds once it has been seen.

Building every model for real took 38 s. Parameters and FLOPs are now counted on PyTorch's meta device
(shapes, no memory, no initialisation: FlopCounterMode reads the shapes, and its counts equal a real
pass's), and the table is cached (``~/.cache/cnnkit``, keyed by the release and the model and task
sources' modification times), so a second listing imports no torch at all. The detectors' heads run
data-dependent steps (proposals, NMS) that the meta device cannot, and their work depends on the
objects found: they have no FLOPs figure here (``cnnkit summary`` counts one real pass).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
from pathlib import Path
from typing import Any

from cnnkit import __version__

PACKAGE = Path(__file__).resolve().parents[1]
FLOPS_SIDE = 224  # px: the side the cached FLOPs are counted at (other --imgsz values are counted when asked)


def cache_file() -> Path:
    root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return root / "cnnkit" / "models.json"


def cache_key() -> str:
    """Changes with the release and with any model or task source, or this file (what a row holds; an
    editable install keeps its version)."""
    sources = sorted([*PACKAGE.glob("models/*.py"), *PACKAGE.glob("tasks/*/__init__.py"), *PACKAGE.glob("tasks/*.py"),
                      Path(__file__).resolve()])
    stamp = ";".join(f"{p.name}:{p.stat().st_mtime_ns}" for p in sources)
    return hashlib.sha256(f"{__version__};{stamp}".encode()).hexdigest()[:16]


def build_rows() -> list[dict[str, Any]]:
    """One row per registered model of every task: name, task, params at 10 classes, FLOPs at ``FLOPS_SIDE``
    px, weights, description."""
    from cnnkit.models import accepts, get_entry, list_models
    from cnnkit.tasks import get_task, task_names, task_of_kind

    for name in task_names():
        get_task(name)  # a task's torch side registers its models
    rows = []
    for name in list_models():
        entry = get_entry(name)
        params, flops = meta_counts(name, FLOPS_SIDE)
        # every model takes a cnnkit checkpoint's encoder (--pretrained best.pt); torchvision ones an ImageNet file
        weights = "cnnkit, imagenet" if accepts(name, "pretrained") and "basic" not in name else "cnnkit"
        weights = "cnnkit, coco" if name.endswith("_coco") else weights
        rows.append({"model": name, "task": task_of_kind(entry.kind), "params": params, "gflops": flops,
                     "weights": weights, "description": entry.description})
    return rows


def meta_counts(name: str, side: int) -> tuple[int, float]:
    """(parameters, GFLOPs of one forward pass on a ``side`` px RGB image) of model ``name`` at 10 classes,
    on the meta device; -1 for what cannot be counted there (a detector's FLOPs, an odd builder)."""
    import torch

    from cnnkit.models import create_model
    from cnnkit.models.summary import count_flops, count_params

    try:
        with torch.device("meta"):
            model = create_model(name, num_classes=10, in_chans=3)
    except Exception:  # noqa: BLE001 - a builder that cannot run on the meta device: no count, no failure
        return -1, -1.0
    try:
        with torch.device("meta"):
            flops = count_flops(model, (1, 3, side, side)) / 1e9
    except Exception:  # noqa: BLE001 - data-dependent steps (a detector's proposals) have no meta kernel
        flops = -1.0
    return count_params(model), flops


def model_rows() -> list[dict[str, Any]]:
    """The cached rows when they are current, else built and cached (a cache that cannot be written is skipped)."""
    path, key = cache_file(), cache_key()
    try:
        cached = json.loads(path.read_text())
        if cached.get("key") == key:
            return cached["rows"]
    except (OSError, ValueError, AttributeError):
        pass
    rows = build_rows()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}")
        tmp.write_text(json.dumps({"key": key, "rows": rows}))
        os.replace(tmp, path)
    except OSError:
        pass
    return rows


def cmd_models(args: argparse.Namespace) -> int:
    rows = [r for r in model_rows() if args.task is None or r["task"] == args.task]
    width = max([len(r["model"]) for r in rows] + [5])
    flops_head = "" if args.no_flops else f"{'GFLOPs@' + str(args.imgsz):>11}  "
    print(f"{'model':<{width}}  {'task':<9} {'params (10 cls)':>15}  {flops_head}{'weights':<17} description")
    for row in rows:
        params = f"{row['params']:,}" if row["params"] >= 0 else "-"
        gflops = row.get("gflops", -1.0) if args.imgsz == FLOPS_SIDE else meta_counts(row["model"], args.imgsz)[1]
        flops = "" if args.no_flops else f"{f'{gflops:.3f}' if gflops >= 0 else '-':>11}  "
        print(f"{row['model']:<{width}}  {row['task']:<9} {params:>15}  {flops}{row['weights']:<17} "
              f"{row['description']}")
    print("also: timm/<name> (classify), <arch>_timm/<name> (unet, fcn8s, deeplabv3plus, maskrcnn, fasterrcnn): "
          "any of timm's models, weights from timm's files (pip install 'cnnkit[timm]')")
    return 0

"""``cnnkit models``: the registry as a table, in well under two seconds once it has been seen.

Building every model for real took 38 s. Parameters are now counted on PyTorch's meta device (shapes,
no memory, no initialisation), and the table is cached (``~/.cache/cnnkit``, keyed by the release and
the model and task sources' modification times), so a second listing imports no torch at all. FLOPs
need a real forward pass: only with ``--flops``.
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


def cache_file() -> Path:
    root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return root / "cnnkit" / "models.json"


def cache_key() -> str:
    """Changes with the release and with any model or task source (an editable install keeps its version)."""
    sources = sorted([*PACKAGE.glob("models/*.py"), *PACKAGE.glob("tasks/*/__init__.py"), *PACKAGE.glob("tasks/*.py")])
    stamp = ";".join(f"{p.name}:{p.stat().st_mtime_ns}" for p in sources)
    return hashlib.sha256(f"{__version__};{stamp}".encode()).hexdigest()[:16]


def build_rows() -> list[dict[str, Any]]:
    """One row per registered model of every task: name, task, params at 10 classes, weights, description."""
    import torch

    from cnnkit.models import accepts, create_model, get_entry, list_models
    from cnnkit.models.summary import count_params
    from cnnkit.tasks import get_task, task_names

    for name in task_names():
        get_task(name)  # a task's torch side registers its models
    rows = []
    for name in list_models():
        entry = get_entry(name)
        try:
            with torch.device("meta"):
                params = count_params(create_model(name, num_classes=10, in_chans=3))
        except Exception:  # noqa: BLE001 - a builder that cannot run on the meta device: no count, no failure
            params = -1
        # every model takes a cnnkit checkpoint's encoder (--pretrained best.pt); torchvision ones an ImageNet file
        weights = "cnnkit, imagenet" if accepts(name, "pretrained") and "basic" not in name else "cnnkit"
        weights = "cnnkit, coco" if name.endswith("_coco") else weights
        rows.append({"model": name, "task": entry.task, "params": params, "weights": weights,
                     "description": entry.description})
    return rows


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
    flops_head = f"{'GFLOPs@' + str(args.imgsz):>12}  " if args.flops else ""
    print(f"{'model':<{width}}  {'task':<9} {'params (10 cls)':>15}  {flops_head}{'weights':<17} description")
    for row in rows:
        flops = f"{count_gflops(row['model'], args.imgsz):>12.3f}  " if args.flops else ""
        params = f"{row['params']:,}" if row["params"] >= 0 else "-"
        print(f"{row['model']:<{width}}  {row['task']:<9} {params:>15}  {flops}{row['weights']:<17} "
              f"{row['description']}")
    print("also: timm/<name> (classify), <arch>_timm/<name> (unet, fcn8s, deeplabv3plus, maskrcnn, fasterrcnn): "
          "any of timm's models, weights from timm's files (pip install 'cnnkit[timm]')")
    return 0


def count_gflops(name: str, imgsz: int) -> float:
    from cnnkit.models import create_model
    from cnnkit.models.summary import count_flops
    from cnnkit.tasks import get_task, task_names

    for task in task_names():
        get_task(task)
    return count_flops(create_model(name, num_classes=10, in_chans=3), (1, 3, imgsz, imgsz)) / 1e9

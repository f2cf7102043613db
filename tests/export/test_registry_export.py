"""Every registered model exports to ONNX and gives PyTorch's outputs on onnxruntime (a model added to
the registry is swept with the others; SegNet's unpooling once failed to export). TorchScript, which
traces the same code, is swept over one model of each architecture (with the basic or smallest
encoder), to keep ``make test`` within its time."""

from __future__ import annotations

import time

import pytest
import torch

from cnnkit import __version__
from cnnkit.api import Model
from cnnkit.api import export as export_model
from cnnkit.engine.checkpoint import save_checkpoint
from cnnkit.export.exporter import build_graph
from cnnkit.export.verify import exported_runner, parity
from cnnkit.models import accepts, get_entry, list_models
from cnnkit.models.registry import CLICKER, PRETRAINER
from cnnkit.models.wrapper import build_image_model
from cnnkit.tasks import task_of_kind
from tests.export.helpers import META, STATS

pytestmark = pytest.mark.slow
SIDE = {"classify": 32, "segment": 64, "instance": 64, "detect": 64, "recognize": 32}
TOL = 1e-3


def checkpoint(folder, name: str):
    task = task_of_kind(get_entry(name).kind)
    meta = {**META[task], **STATS, "model": name}
    meta["model_args"] = meta["model_args"] if task in ("instance", "detect") else {}
    if name.endswith("_coco"):  # torchvision's layout: its widths are fixed by the COCO weights
        meta["model_args"] = {"detections": 20}
    if accepts(name, "input_size"):  # as training builds it: a fixed-size head for the data's size
        meta["model_args"] = {"input_size": SIDE[task]}
    torch.manual_seed(0)
    model = build_image_model(meta).eval()
    path = folder / f"{name}.pt"
    state = {"cnnkit_version": __version__, "task": task, "meta": model.meta, "config": {},
             "model": model.state_dict(), "epoch": 0}
    save_checkpoint(state, path)
    return path, Model(model, state, torch.device("cpu"))  # in memory: a large model is not read back twice


# every model but pretraining's (its networks are fine-tuned or embed; they are not exported) and the click models'
# (they answer clicks, not images: the click task has no export graph)
EXPORTABLE = [n for n in list_models() if get_entry(n).kind not in (PRETRAINER, CLICKER)]


def one_per_architecture() -> list[str]:
    """The first model of each architecture (the name before the encoder), in name order."""
    seen: dict[str, str] = {}
    for name in EXPORTABLE:
        seen.setdefault(name.split("_")[0] if "_" in name else name, name)
    return sorted(seen.values())


@pytest.mark.parametrize("name, fmt", [(n, "onnx") for n in EXPORTABLE]
                         + [(n, "torchscript") for n in one_per_architecture()])
def test_every_model_exports_with_parity(tmp_path, name, fmt):
    path, model = checkpoint(tmp_path, name)
    task = model.meta.task
    start = time.perf_counter()
    out, _ = export_model(path, fmt, imgsz=SIDE[task], out=tmp_path / f"m.{fmt}")
    graph = build_graph(model, half=False)
    shape = [1, 3, SIDE[task], SIDE[task]]
    differences = parity(graph, exported_runner(str(out), fmt), shape, 3, SIDE[task], samples=1)
    # ResNet-50 at random weights carries float error through 50 layers: its mask probabilities differ by ~2e-3
    tol = 5 * TOL if name.endswith("_coco") else TOL
    for key, value in differences.items():
        assert not key.endswith("count_diff"), differences
        assert value <= (tol if key.endswith("max_abs_diff") else 0.0), differences
    print(f"{name} {fmt}: {time.perf_counter() - start:.1f}s")

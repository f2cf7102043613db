"""``cnnkit export --verify`` and ``cnnkit val`` on an .onnx file: the exported model against PyTorch.

- parity: the largest output difference between the eager graph and the exported file on sample inputs;
- agreement: the task's metrics (top-1, mIoU, AP) of both on a validation set, side by side;
- latency: CPU milliseconds per batch for eager PyTorch, onnxruntime and torch.compile.
"""

from __future__ import annotations

import logging
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Subset

from cnnkit.config import make_config
from cnnkit.engine.task import Task
from cnnkit.errors import CnnkitError
from cnnkit.export.exporter import example_input
from cnnkit.log import LOGGER
from cnnkit.meta import ModelMeta
from cnnkit.progress import progress_bar


def latency_ms(fn: Callable[[], Any], runs: int = 20, warmup: int = 3, budget_s: float = 30.0) -> list[float]:
    """Wall-clock milliseconds of up to ``runs`` calls of ``fn()`` (at least 3; fewer past ``budget_s``)."""
    for _ in range(warmup):
        fn()
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < runs and (len(times) < 3 or time.perf_counter() - start < budget_s):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    return times


def output_differences(reference: list[np.ndarray], other: list[np.ndarray], names: list[str]) -> dict[str, float]:
    """Per output: the largest absolute difference (float outputs) or the fraction of entries that
    differ (integer outputs: class ids, labels); a differing count of detections is reported as such."""
    out = {}
    for name, a, b in zip(names, reference, other):
        if a.shape != b.shape:
            out[f"{name}_count_diff"] = float(abs(len(a) - len(b)))
        elif np.issubdtype(a.dtype, np.floating):
            out[f"{name}_max_abs_diff"] = float(np.abs(a.astype(np.float64) - b).max(initial=0.0))
        else:
            out[f"{name}_mismatch"] = float((a != b).mean()) if a.size else 0.0
    return out


def _as_uint8(images: Any) -> np.ndarray:
    """A batch from a task's loader (tensor ``(N, C, H, W)`` or a list of ``(C, H, W)``) -> uint8 numpy."""
    x = torch.stack(list(images)) if isinstance(images, (list, tuple)) else images
    if x.dtype != torch.uint8:
        x = (x.float() * 255).round().clamp(0, 255).to(torch.uint8)
    return x.numpy()


def fits(shape: list, batch: np.ndarray) -> bool:
    """Whether the exported input ``shape`` (named axes are free) takes ``batch``."""
    return all(isinstance(s, str) or s == n for s, n in zip(shape, batch.shape))


def sample_indices(n: int, limit: int, seed: int = 0) -> list[int]:
    """``limit`` of ``n`` indices drawn at random with a fixed seed, in order; all when ``limit`` is 0
    or at least ``n``. Folders list images class by class, so the first ``limit`` would often be one
    class, whose precision and recall say nothing."""
    if not limit or limit >= n:
        return list(range(n))
    return sorted(np.random.default_rng(seed).choice(n, size=limit, replace=False).tolist())


def score_on_data(run_exported: Callable[[np.ndarray], list[np.ndarray]], shape: list, task: Task,
                  meta: ModelMeta, config: dict[str, Any], data: str, limit: int = 0,
                  reference: torch.nn.Module | None = None, split: str = "auto") -> dict[str, Any]:
    """The task's metrics of the exported model (and of ``reference``, the eager graph) on ``data``'s
    validation split (or ``split``; ``limit`` of its images if > 0, drawn across it), one image at a time."""
    graph_cls: Any = task.graph
    if graph_cls is None:
        raise CnnkitError(f"the {task.name} task has no export graph to score")
    cfg = make_config({**config, "task": meta.task, "data": data, "resume": False, "batch": 1},
                      origin="exported model", saved=True)
    dataset = task.build_data(cfg, meta=meta, split=split)
    chosen = Subset(dataset.val, sample_indices(len(dataset.val), limit))
    loader = DataLoader(chosen, batch_size=1, collate_fn=dataset.collate_fn)
    scored = {"exported": task.build_metrics(meta, torch.device("cpu"))}
    if reference is not None:
        scored["pytorch"] = task.build_metrics(meta, torch.device("cpu"))
    agree, count = [], 0
    for images, targets in progress_bar(loader, total=len(loader), desc="verify", unit="img"):
        batch = _as_uint8(images)
        if not fits(shape, batch):
            raise CnnkitError(f"{data}: images of {list(batch.shape[2:])} px do not fit the exported input "
                              f"{shape}; export with --dynamic or --imgsz matching the data")
        outs = run_exported(batch)
        scored["exported"].update(graph_cls.metric_outputs([torch.from_numpy(o) for o in outs], meta), targets)
        if reference is not None:
            with torch.no_grad():
                ref = [t.numpy() for t in _tuple(reference(torch.from_numpy(batch)))]
            scored["pytorch"].update(graph_cls.metric_outputs([torch.from_numpy(o) for o in ref], meta), targets)
            agree.append(_same_prediction(ref, outs))
        count += 1
    result: dict[str, Any] = {"images": count, "metrics": {k: m.compute() for k, m in scored.items()}}
    if agree:
        result["same_prediction"] = float(np.mean(agree))
    result["report"] = scored["exported"]
    return result


def _tuple(outputs: Any) -> tuple | list:
    return outputs if isinstance(outputs, (tuple, list)) else (outputs,)


def _same_prediction(a: list[np.ndarray], b: list[np.ndarray]) -> float:
    """Classify: same top-1 class; segment: fraction of equal pixels; detection: same labels in order."""
    if a[0].ndim == 2 and np.issubdtype(a[0].dtype, np.floating) and len(a) == 1:
        return float((a[0].argmax(1) == b[0].argmax(1)).mean())
    if len(a) == 1:
        return float((a[0] == b[0]).mean())
    return float(a[1].shape == b[1].shape and bool((a[1] == b[1]).all()))


def parity(graph: torch.nn.Module, run_exported: Callable[[np.ndarray], list[np.ndarray]], shape: list,
           channels: int, side: int, samples: int = 4) -> dict[str, float]:
    """Largest output differences over ``samples`` random uint8 inputs (and a non-square one where the
    size is free)."""
    sizes = [(side, side)] * samples
    if isinstance(shape[2], str):
        sizes[-1] = (side + side // 3, side - side // 4)
    worst: dict[str, float] = {}
    for k, (h, w) in enumerate(sizes):
        x = example_input(channels, max(h, w), seed=k + 1)[..., :h, :w].contiguous()
        with torch.no_grad():
            ref = [t.numpy() for t in _tuple(graph(x))]
        for key, value in output_differences(ref, run_exported(x.numpy()), list(graph.outputs)).items():
            worst[key] = max(worst.get(key, 0.0), value)
    return worst


def latencies(graph: torch.nn.Module, run_exported: Callable[[np.ndarray], Any], channels: int, side: int,
              batch: int, compile_too: bool = True, runs: int = 20, rounds: int = 3) -> dict[str, float | str]:
    """Median CPU milliseconds per batch of ``batch`` images: eager, exported, torch.compile.

    The candidates take turns over ``rounds`` rounds, so that a slow spell of a shared machine
    falls on all of them rather than on one.
    """
    x = example_input(channels, side, batch=batch)
    xn = x.numpy()
    candidates: dict[str, Callable[[], Any]] = {"eager_ms": lambda: graph(x), "exported_ms": lambda: run_exported(xn)}
    out: dict[str, float | str] = {}
    with torch.no_grad():
        if compile_too:
            try:
                # torch's C++ toolchain probe says "No CUDA runtime is found, using CUDA_HOME" on every CPU machine
                logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)
                compiled = torch.compile(graph)
                compiled(x)  # compile outside the timing
                candidates["compile_ms"] = lambda: compiled(x)
            except Exception as e:  # noqa: BLE001 - report, do not fail the export
                LOGGER.warning("torch.compile failed: %s", str(e).splitlines()[0][:200])
                out["compile_ms"] = "failed"
        times: dict[str, list[float]] = {name: [] for name in candidates}
        for _ in range(rounds):
            for name, fn in candidates.items():
                times[name] += latency_ms(fn, max(3, runs // rounds), warmup=1, budget_s=30.0 / rounds)
    return {**{name: statistics.median(t) for name, t in times.items()}, **out}


def exported_runner(path: str, fmt: str) -> Callable[[np.ndarray], list[np.ndarray]]:
    """``(N, C, H, W)`` uint8 -> the exported file's outputs as numpy arrays."""
    if fmt == "onnx":
        from cnnkit.export.runtime import OnnxModel

        return OnnxModel(path, parts_for=None).run
    module = torch.jit.load(path, map_location="cpu")

    def run(x: np.ndarray) -> list[np.ndarray]:
        with torch.no_grad():
            return [t.numpy() for t in _tuple(module(torch.from_numpy(x)))]
    return run


def verify_export(model: Any, path: str, fmt: str, shape: list, half: bool = False, data: str = "",
                  limit: int = 200, compile_too: bool = True) -> dict[str, Any]:
    """Parity, agreement on ``data`` (when given) and latency of the exported file against eager PyTorch;
    ``model``: the loaded checkpoint (``cnnkit.api.Model``) it was exported from."""
    from cnnkit.export.exporter import build_graph

    graph = build_graph(model, half)
    run = exported_runner(path, fmt)
    channels = model.meta.in_chans
    side = next((s for s in shape[2:] if isinstance(s, int)), 0) or model.meta.input_side
    report: dict[str, Any] = {"file": str(path), "format": fmt, "parity": parity(graph, run, shape, channels, side)}
    if data:
        scored = score_on_data(run, shape, model.task, model.meta, model.checkpoint.get("config", {}), data, limit,
                               graph)
        report["agreement"] = {k: v for k, v in scored.items() if k != "report"}
    report["latency_batch1"] = latencies(graph, run, channels, side, 1, compile_too)
    if isinstance(shape[0], str):
        report["latency_batch8"] = latencies(graph, run, channels, side, 8, compile_too)
    return report

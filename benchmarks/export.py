"""CPU latency of exported models: eager PyTorch against onnxruntime against torch.compile.

The same graph in all three: uint8 images in, normalisation inside, the task's post-processing at
the end (softmax probabilities; the class map). Models are untrained: latency does not depend on
the weights. Target: onnxruntime at most 0.7x the eager latency.

    .venv/bin/python benchmarks/export.py [--runs 20] [--out benchmarks/export.json]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import warnings
from pathlib import Path

import torch
from common import machine

from cnnkit import __version__
from cnnkit.api import export as export_model
from cnnkit.api import load
from cnnkit.engine.checkpoint import save_checkpoint
from cnnkit.export.exporter import build_graph
from cnnkit.export.verify import exported_runner, latencies, parity
from cnnkit.models.wrapper import build_image_model

CASES = {
    "resnet18 classifier, 224 px, 10 classes": {
        "task": "classify", "model": "resnet18", "imgsz": 224, "classes": [f"c{i}" for i in range(10)]},
    "unet_resnet18 segmenter, 256 px, 11 classes": {
        "task": "segment", "model": "unet_resnet18", "imgsz": 256, "crop": [256, 256], "max_size": 0,
        "classes": [f"c{i}" for i in range(11)], "values": list(range(11)), "ignore_index": 255, "binary": False,
        "colours": [[20 * i, 0, 0] for i in range(11)]},
}


def checkpoint(case: dict, folder: Path) -> Path:
    k = len(case["classes"])
    meta = {**case, "num_classes": k, "num_outputs": k, "in_chans": 3, "model_args": {},
            "mean": [0.45] * 3, "std": [0.25] * 3}
    torch.manual_seed(0)
    model = build_image_model(meta).eval()
    path = folder / f"{case['model']}.pt"
    save_checkpoint({"cnnkit_version": __version__, "task": case["task"], "meta": model.meta, "config": {},
                     "model": model.state_dict()}, path)
    return path


def run_case(name: str, case: dict, folder: Path, runs: int) -> dict:
    weights = checkpoint(case, folder)
    start = time.perf_counter()
    path, _ = export_model(weights, "onnx", dynamic=True)
    export_s = time.perf_counter() - start
    graph = build_graph(load(weights, device="cpu"), half=False)
    run = exported_runner(str(path), "onnx")
    side = case["imgsz"]
    row = {"case": name, "export_s": round(export_s, 1), "onnx_mb": round(path.stat().st_size / 1e6, 1),
           "parity": parity(graph, run, ["batch", 3, "height", "width"] if case["task"] == "segment"
                            else ["batch", 3, side, side], 3, side, samples=2)}
    for batch in (1, 8):
        times = latencies(graph, run, 3, side, batch, compile_too=True, runs=runs)
        times["onnxruntime_vs_eager"] = round(times["exported_ms"] / times["eager_ms"], 3)
        if isinstance(times.get("compile_ms"), float):
            times["compile_vs_eager"] = round(times["compile_ms"] / times["eager_ms"], 3)
        row[f"batch{batch}"] = times
        print(f"{name}, batch {batch}: " + ", ".join(f"{k} {v:.2f}" if isinstance(v, float) else f"{k} {v}"
                                                    for k, v in times.items()), flush=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20, help="timed calls per measurement (median reported)")
    parser.add_argument("--out", default=str(Path(__file__).with_name("export.json")))
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    import onnxruntime

    report = {"machine": machine(), "onnxruntime": onnxruntime.__version__, "date": time.strftime("%Y-%m-%d"),
              "runs": args.runs, "results": []}
    with tempfile.TemporaryDirectory() as tmp:
        for name, case in CASES.items():
            report["results"].append(run_case(name, case, Path(tmp), args.runs))
    Path(args.out).write_text(json.dumps(report, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

"""``cnnkit export`` and ``cnnkit serve``, and the loader that takes a checkpoint or an .onnx file."""

from __future__ import annotations

import argparse
import json
from typing import Any

from cnnkit.errors import CnnkitError, require
from cnnkit.files import atomic_write_bytes, json_bytes
from cnnkit.predictor import Predictor


def load_predictor(weights: str, device: str = "auto") -> Predictor:
    """A checkpoint, an .onnx (onnxruntime, no torch) or a TorchScript file, as one Predictor."""
    from cnnkit.api import load

    return load(weights, device=device)


def _print_report(report: dict[str, Any]) -> None:
    parity = ", ".join(f"{k}={v:.3g}" for k, v in report["parity"].items())
    print(f"parity (eager PyTorch vs {report['format']}, random inputs): {parity}")
    if "agreement" in report:
        agreement = report["agreement"]
        for who, metrics in agreement["metrics"].items():
            print(f"  {who:>8}: " + " ".join(f"{k}={v:.4f}" for k, v in metrics.items()))
        print(f"  same prediction on {agreement['images']} images: {agreement.get('same_prediction', 0):.4f}")
    for key in ("latency_batch1", "latency_batch8"):
        if key in report:
            cells = ", ".join(f"{k[:-3]} {v:.2f} ms" if isinstance(v, float) else f"{k[:-3]} {v}"
                              for k, v in report[key].items())
            print(f"CPU latency, {key[8:].replace('batch', 'batch ')}: {cells}")


def cmd_export(args: argparse.Namespace) -> int:
    from cnnkit.api import load_checkpoint_model
    from cnnkit.export.exporter import export_model
    from cnnkit.export.verify import verify_export

    if args.format == "onnx":  # before any work: --verify once failed for want of onnxruntime after writing the file
        require("onnx", "export", "exporting to ONNX")
        if args.verify:
            require("onnxruntime", "export", "export --verify")
    model = load_checkpoint_model(args.weights, "cpu")
    path, metadata = export_model(model, args.weights, args.format, args.imgsz, args.dynamic, args.half, args.out)
    export = json.loads(metadata["cnnkit_export"])
    shape = export["input"]["shape"]
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB): {metadata['task']}, input images {shape} uint8, "
          f"outputs {', '.join(export['outputs'])}")
    if args.verify:
        report = verify_export(model, str(path), args.format, shape, args.half, args.data, args.limit,
                               compile_too=not args.no_compile)
        _print_report(report)
        out = path.with_name(path.name + ".verify.json")
        atomic_write_bytes(out, json_bytes(report, indent=2))
        print(f"report: {out}")
    if metadata["task"] == "recognize":  # an embedding is used by comparing it, not read on its own
        print(f"next:\n  cnnkit verify --weights {path} A B\n"
              f"  cnnkit search --weights {path} --gallery G.npz IMAGES...\n"
              f"  cnnkit serve --weights {path} --gallery G.npz")
    else:
        print(f"next:\n  cnnkit predict --weights {path} IMAGES...\n  cnnkit serve --weights {path}")
    return 0


def check_address(host: str, port: int) -> None:
    """Refuse, in one line, an address this machine cannot listen on (a port in use, an unknown host),
    before the model is loaded; uvicorn would otherwise exit 3 after its own log line."""
    import socket

    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind(address)
    except OSError as e:
        raise CnnkitError(f"--host {host} --port {port}: cannot listen there ({e.strerror or e}); pick a free "
                          "--port, and a --host that is this machine's (127.0.0.1, or 0.0.0.0 for all)") from None


def cmd_serve(args: argparse.Namespace) -> int:
    for module in ("fastapi", "uvicorn", "python_multipart"):
        require(module, "serve", "cnnkit serve")
    from cnnkit.serve.app import Limits, serve

    check_address(args.host, args.port)

    limits = Limits(max_upload_mb=args.max_upload_mb, max_pixels=args.max_pixels, workers=args.workers,
                    queue=args.queue, timeout_s=args.timeout, body_timeout_s=args.body_timeout,
                    api_key=args.api_key)
    serve(load_predictor(args.weights, args.device), args.host, args.port, limits, gallery=args.gallery,
          allow_enrol=args.allow_enrol)
    return 0

"""Load test of ``cnnkit serve``: 2,000 requests at concurrency 8 from this process on loopback.

The server is the real command (``cnnkit serve``) in its own process, with its default queue of 16
and ``--workers`` inference threads (1, then 2). Each request posts a 224 px JPEG as raw bytes to
/predict. The model is an untrained ResNet-18 classifier at 224 px (latency does not depend on the
weights), served from its PyTorch checkpoint and from its ONNX export.

    .venv/bin/python benchmarks/serve.py [--requests 2000] [--concurrency 8] [--workers 1 2]
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from common import machine
from export import CASES, checkpoint
from PIL import Image

from cnnkit.api import export as export_model
from cnnkit.data.synthetic import make_scene


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(weights: Path, port: int, workers: int = 1) -> subprocess.Popen:
    cli = Path(sys.executable).with_name("cnnkit")
    server = subprocess.Popen([str(cli), "serve", "--weights", str(weights), "--port", str(port),
                               "--workers", str(workers)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return server
        except httpx.HTTPError:
            time.sleep(0.2)
    server.kill()
    raise RuntimeError("the server did not start within 120 s")


async def load_test(url: str, body: bytes, requests: int, concurrency: int) -> dict:
    latencies: list[float] = []
    errors: dict[str, int] = {}
    issued = 0

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal issued
        while issued < requests:
            issued += 1
            start = time.perf_counter()
            try:
                response = await client.post(url, content=body, headers={"content-type": "image/jpeg"})
                if response.status_code == 200:
                    latencies.append((time.perf_counter() - start) * 1000)
                else:
                    errors[str(response.status_code)] = errors.get(str(response.status_code), 0) + 1
            except httpx.HTTPError as e:
                errors[type(e).__name__] = errors.get(type(e).__name__, 0) + 1

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=60) as client:
        start = time.perf_counter()
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
        wall = time.perf_counter() - start
    ordered = sorted(latencies)
    return {"requests": requests, "ok": len(latencies), "errors": errors, "wall_s": round(wall, 1),
            "throughput_rps": round(len(latencies) / wall, 2),
            "p50_ms": round(statistics.median(ordered), 1) if ordered else None,
            "p99_ms": round(ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))], 1) if ordered else None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="inference threads, one run each")
    parser.add_argument("--out", default=str(Path(__file__).with_name("serve.json")))
    args = parser.parse_args()
    buffer = io.BytesIO()
    Image.fromarray(make_scene(0, seed=1, size=224).image).save(buffer, format="JPEG", quality=90)
    report = {"machine": machine(), "date": time.strftime("%Y-%m-%d"), "image_bytes": len(buffer.getvalue()),
              "results": {}}
    with tempfile.TemporaryDirectory() as tmp:
        weights = checkpoint(CASES["resnet18 classifier, 224 px, 10 classes"], Path(tmp))
        onnx_path, _ = export_model(weights, "onnx", dynamic=True)
        runs = [(f"{kind}, {w} worker{'s' if w > 1 else ''}", served, w) for w in args.workers
                for kind, served in (("pytorch checkpoint", weights), ("onnx export", onnx_path))]
        for name, served, workers in runs:
            port = free_port()
            server = start_server(served, port, workers)
            try:
                url = f"http://127.0.0.1:{port}/predict"
                asyncio.run(load_test(url, buffer.getvalue(), 50, args.concurrency))  # warm-up, not counted
                result = asyncio.run(load_test(url, buffer.getvalue(), args.requests, args.concurrency))
            finally:
                server.terminate()
                server.wait(timeout=30)
            report["results"][name] = result
            print(f"{name}: {json.dumps(result)}", flush=True)
    Path(args.out).write_text(json.dumps(report, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

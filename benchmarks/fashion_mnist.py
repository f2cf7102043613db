"""Fashion-MNIST, side by side in one process: cnnkit's CPU recipes against PyTorch's MNIST example.

The reference is PyTorch's classic basic-CNN recipe (examples/mnist/main.py): conv 1->32 and 32->64
(3x3, ReLU), max-pool 2, dropout 0.25, FC 9216->128, dropout 0.5, ->10; Adadelta lr 1.0, StepLR
gamma 0.7, batch 64. Its data are held in memory as tensors, as cnnkit's are, so that only the
recipes differ. Every run reports test accuracy after each epoch with elapsed wall-clock seconds
(data preparation included), time to 91% and 93%, final accuracy and peak resident memory.

    python benchmarks/fashion_mnist.py --data ../shared/datasets/fashion-mnist
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from common import peak_rss_mb, reset_peak_rss  # benchmarks/common.py
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from cnnkit.api import train_with
from cnnkit.config import (
    RECIPES,  # noqa: E402 - the recipes ship with the package
    load_yaml,
    make_config,
)
from cnnkit.data.idx import load_idx_split


class ReferenceNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 3, 1)
        self.conv2 = nn.Conv2d(32, 64, 3, 1)
        self.dropout1 = nn.Dropout(0.25)
        self.dropout2 = nn.Dropout(0.5)
        self.fc1 = nn.Linear(9216, 128)
        self.fc2 = nn.Linear(128, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv2(F.relu(self.conv1(x)))), 2)
        x = torch.flatten(self.dropout1(x), 1)
        x = self.dropout2(F.relu(self.fc1(x)))
        return F.log_softmax(self.fc2(x), dim=1)


def run_reference(data: Path, epochs: int) -> dict:
    """PyTorch's MNIST example recipe, unchanged but for in-memory data."""
    torch.manual_seed(1)
    reset_peak_rss()
    start = time.perf_counter()
    tensors = {}
    for split in ("train", "val"):
        images, labels = load_idx_split(data, split)
        x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255
        tensors[split] = TensorDataset((x - 0.1307) / 0.3081, torch.from_numpy(labels))
    train = DataLoader(tensors["train"], batch_size=64, shuffle=True)
    test = DataLoader(tensors["val"], batch_size=1000)
    model = ReferenceNet()
    optimizer = torch.optim.Adadelta(model.parameters(), lr=1.0)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.7)
    history = []
    for epoch in range(1, epochs + 1):
        model.train()
        for x, y in train:
            optimizer.zero_grad()
            F.nll_loss(model(x), y).backward()
            optimizer.step()
        model.eval()
        correct = 0
        with torch.no_grad():
            for x, y in test:
                correct += (model(x).argmax(1) == y).sum().item()
        scheduler.step()
        history.append({"epoch": epoch, "top1": correct / len(tensors["val"]), "time_s": time.perf_counter() - start})
        print(f"  reference epoch {epoch}: top1 {history[-1]['top1']:.4f} at {history[-1]['time_s']:.0f}s", flush=True)
    return summarise("reference (PyTorch MNIST example)", history)


def run_cnnkit(data: Path, recipe: str, out: Path) -> dict:
    values = load_yaml(RECIPES / f"{recipe}.yaml")
    cfg = make_config({**values, "task": "classify", "data": str(data), "project": str(out), "name": recipe,
                       "verbose": False})
    history = []
    reset_peak_rss()
    start = time.perf_counter()

    def record(epoch: int, row: dict) -> None:
        history.append({"epoch": epoch, "top1": row["top1"], "time_s": time.perf_counter() - start})
        print(f"  {recipe} epoch {epoch}: top1 {row['top1']:.4f} at {history[-1]['time_s']:.0f}s", flush=True)

    train_with(cfg, on_epoch_end=record)
    model_args = ", ".join(f"{k}={v}" for k, v in cfg.model_args.items())
    return summarise(f"cnnkit {recipe}: {cfg.model}({model_args}), {cfg.epochs} epochs", history)


def summarise(name: str, history: list[dict]) -> dict:
    def first(threshold: float):
        return next((h["time_s"] for h in history if h["top1"] >= threshold), None)

    return {"name": name, "history": history, "t91_s": first(0.91), "t93_s": first(0.93),
            "final_top1": history[-1]["top1"], "best_top1": max(h["top1"] for h in history),
            "total_s": history[-1]["time_s"], "peak_rss_mb": peak_rss_mb()}


def fmt(t: float | None) -> str:
    return "not reached" if t is None else f"{t:.0f} s"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="../shared/datasets/fashion-mnist", type=Path)
    parser.add_argument("--ref-epochs", type=int, default=4, help="reference epochs (it reaches 91%% in about 3)")
    parser.add_argument("--recipes", default="fashion_fast,fashion_best", help="recipe names in src/cnnkit/recipes")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/fashion_mnist.json"))
    args = parser.parse_args()
    if not args.data.is_dir():
        raise SystemExit(f"{args.data}: Fashion-MNIST IDX folder not found; pass --data")
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__},"
          f" {torch.get_num_threads()} threads", flush=True)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for recipe in [r for r in args.recipes.split(",") if r]:
            results.append(run_cnnkit(args.data, recipe, Path(tmp)))
        if args.ref_epochs:
            results.append(run_reference(args.data, args.ref_epochs))
    ref = next((r for r in results if r["name"].startswith("reference")), None)
    print("\n| run | time to 91% | time to 93% | final top-1 | best top-1 | total | peak RSS |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for r in results:
        print(f"| {r['name']} | {fmt(r['t91_s'])} | {fmt(r['t93_s'])} | {r['final_top1']:.4f} | "
              f"{r['best_top1']:.4f} | {r['total_s']:.0f} s | {r['peak_rss_mb']:.0f} MB |")
    if ref and ref["t91_s"]:
        for r in results:
            if r is not ref and r["t91_s"]:
                print(f"{r['name']}: reaches 91% {ref['t91_s'] / r['t91_s']:.2f}x sooner than the reference")
    args.out.write_text(json.dumps({"date": time.strftime("%Y-%m-%d"), "results": results}, indent=2))


if __name__ == "__main__":
    main()

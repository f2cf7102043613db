"""Label efficiency on Fashion-MNIST: what pretraining without labels buys when labels are few.

Side by side in one run, for 1% and 10% of the training labels (60 / 600 per class, fixed seed):
(a) supervised from random initialisation on the labelled part only;
(b) self-supervised pretraining on all 60,000 training images (labels unused), then the same
    supervised recipe started from the pretrained encoder (--pretrained);
(c) k-NN (k=20, cosine) on the frozen pretrained embedding, the labelled part as the bank.
Also k-NN on raw pixels as a floor. Test accuracy is on the 10,000 test images, at the last epoch
(the test set chooses nothing). Seconds and peak memory per stage.

    python benchmarks/label_efficiency.py --data ../shared/datasets/fashion-mnist
"""

from __future__ import annotations

import argparse
import csv
import gzip
import json
import os
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, peak_rss_mb, reset_peak_rss  # noqa: E402

import cnnkit  # noqa: E402
from cnnkit.data.idx import load_idx_split  # noqa: E402
from cnnkit.metrics.embedding import knn_predict  # noqa: E402


def write_idx_subset(src: Path, out: Path, index: np.ndarray, images: np.ndarray, labels: np.ndarray) -> Path:
    """An IDX folder of the chosen training images and labels, with the full test split linked in."""
    out.mkdir(parents=True, exist_ok=True)
    n, h, w = len(index), images.shape[1], images.shape[2]
    with gzip.open(out / "train-images-idx3-ubyte.gz", "wb") as f:
        f.write(np.array([0x803, n, h, w], ">i4").tobytes() + images[index, :, :, 0].astype(np.uint8).tobytes())
    with gzip.open(out / "train-labels-idx1-ubyte.gz", "wb") as f:
        f.write(np.array([0x801, n], ">i4").tobytes() + labels[index].astype(np.uint8).tobytes())
    for name in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        if not (out / name).exists():
            os.symlink((src / name).resolve(), out / name)
    return out


def per_class(labels: np.ndarray, count: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.sort(np.concatenate([rng.choice(np.flatnonzero(labels == c), count, replace=False)
                                   for c in np.unique(labels)]))


def last_top1(run_dir: Path) -> float:
    with (run_dir / "metrics.csv").open() as f:
        return float(list(csv.DictReader(f))[-1]["top1"])


def stage(name: str, results: dict, fn) -> object:
    reset_peak_rss()
    start = time.perf_counter()
    value = fn()
    results[name] = {"seconds": round(time.perf_counter() - start, 1), "peak_mb": round(peak_rss_mb())}
    print(f"{name}: {results[name]}", flush=True)
    return value


def knn_accuracy(bank: np.ndarray, bank_labels: np.ndarray, test: np.ndarray, test_labels: np.ndarray) -> float:
    scores = knn_predict(torch.from_numpy(bank), torch.from_numpy(bank_labels).long(), torch.from_numpy(test), k=20)
    return float((scores.argmax(1).numpy() == test_labels).mean())


def finetune(data: Path, args: argparse.Namespace, work: Path, name: str, pretrained: str, epochs: int) -> float:
    run = cnnkit.train(task="classify", data=str(data), model=args.model, epochs=epochs, batch=64, lr=0.05,
                       optimizer="sgd", schedule="onecycle", augment="light", pretrained=pretrained,
                       project=str(work / "runs"), name=name, exist_ok=True, verbose=False, save_period=0)
    return last_top1(run.run_dir)


def one_fraction(fraction: float, arrays: tuple, encoder, weights: str, args: argparse.Namespace, work: Path
                 ) -> dict:
    """(a), (b) and (c) with ``fraction`` of the training labels."""
    train_x, train_y, test_x, test_y, test_emb = arrays
    key = f"{fraction:.0%}".rstrip("%")
    index = per_class(train_y, round(fraction * len(train_y) / 10), seed=0)
    data = write_idx_subset(Path(args.data), work / f"labels_{key}", index, train_x, train_y)
    epochs = max(10, round(24_000 / len(index)))  # about 24,000 images seen, at least 10 epochs
    row: dict = {"labelled_images": len(index), "epochs": epochs}
    flat = train_x[index].reshape(len(index), -1).astype(np.float32)
    row["raw_pixel_knn"] = round(knn_accuracy(flat, train_y[index], test_x.reshape(len(test_x), -1).astype(
        np.float32), test_y), 4)
    timing: dict = {}
    row["a_supervised"] = round(stage("a", timing, partial(finetune, data, args, work, f"a_{key}", "", epochs)), 4)
    row["b_pretrained_finetuned"] = round(stage("b", timing, partial(finetune, data, args, work, f"b_{key}", weights,
                                                                      epochs)), 4)
    bank = encoder.embed(list(train_x[index][..., 0]), batch=512)
    row["c_knn_frozen"] = round(stage("c", timing, partial(knn_accuracy, bank, train_y[index], test_emb, test_y)), 4)
    row["timing"] = timing
    return row


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default="../shared/datasets/fashion-mnist")
    p.add_argument("--model", default="fastnet_small")
    p.add_argument("--method", default="simclr")
    p.add_argument("--pretrain-epochs", type=int, default=5)
    p.add_argument("--fractions", type=float, nargs="+", default=[0.01, 0.1])
    p.add_argument("--out", default="benchmarks/label_efficiency.json")
    p.add_argument("--work", default="", help="folder for runs [default: a temporary folder]")
    args = p.parse_args()
    src = Path(args.data)
    work = Path(args.work or tempfile.mkdtemp(prefix="label_efficiency_"))
    train_x, train_y = load_idx_split(src, "train")
    test_x, test_y = load_idx_split(src, "val")
    results: dict = {"machine": machine(), "model": args.model, "method": args.method,
                     "pretrain_epochs": args.pretrain_epochs, "date": time.strftime("%Y-%m-%d")}

    pre = stage("pretrain", results, lambda: cnnkit.train(
        task="pretrain", data=str(src), val=str(src), model=args.model, method=args.method,
        epochs=args.pretrain_epochs, project=str(work / "runs"), name="pretrain", exist_ok=True, verbose=False,
        save_period=0))
    weights = str(pre.run_dir / "best.pt")
    results["pretrain"]["knn_loo_on_test"] = round(pre.best.get("knn_top1", float("nan")), 4)
    encoder = cnnkit.load(weights)
    test_emb = stage("embed_test", results, lambda: encoder.embed(list(test_x[..., 0]), batch=512))

    for fraction in args.fractions:
        key = f"{fraction:.0%}"
        results[key] = one_fraction(fraction, (train_x, train_y, test_x, test_y, test_emb), encoder, weights, args,
                                    work)
        print(key, json.dumps(results[key]), flush=True)
    Path(args.out).write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()

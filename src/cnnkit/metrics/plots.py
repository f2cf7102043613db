"""PNG plots with matplotlib's Agg backend (no display needed)."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402


def plot_confusion_matrix(cm: torch.Tensor, classes: list[str], path: Path, annotate: str = "count") -> Path:
    """Row-normalised confusion matrix (true class per row); with few classes each cell shows its
    count (``annotate="count"``) or its row fraction (``"fraction"``, for pixel counts)."""
    n = len(classes)
    norm = cm.float() / cm.sum(1, keepdim=True).clamp_min(1)
    size = min(4 + 0.45 * n, 30)
    fig, ax = plt.subplots(figsize=(size, size * 0.85))
    im = ax.imshow(norm.numpy(), cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(n), classes, rotation=90 if n > 6 else 0, fontsize=8)
    ax.set_yticks(range(n), classes, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if n <= 30:
        for i in range(n):
            for j in range(n):
                text = int(cm[i, j]) if annotate == "count" else f"{float(norm[i, j]):.2f}"
                ax.text(j, i, text, ha="center", va="center", fontsize=7,
                        color="white" if norm[i, j] > 0.5 else "black")
    fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_results(metrics_csv: Path, path: Path) -> Path:
    """Loss (train and val in one panel) and each metric against epoch, from metrics.csv."""
    from matplotlib.ticker import MaxNLocator

    with metrics_csv.open() as f:
        rows = list(csv.DictReader(f))
    losses = [k for k in ("train_loss", "val_loss") if rows and k in rows[0]]
    panels: list[list[str]] = [losses] if losses else []
    panels += [[k] for k in (rows[0] if rows else []) if k not in ("epoch", "time_s", "lr", *losses)]
    cols = min(4, max(1, len(panels)))
    nrows = max(1, -(-len(panels) // cols))
    fig, axes = plt.subplots(nrows, cols, figsize=(4 * cols, 3 * nrows), squeeze=False)
    epochs = [int(r["epoch"]) for r in rows]
    for ax, keys in zip(axes.flat, panels):
        for key in keys:
            values = [float(r[key]) if r.get(key) not in (None, "") else float("nan") for r in rows]
            ax.plot(epochs, values, marker="o", ms=3, label=key)
        ax.set_title("loss" if keys == losses else keys[0])
        if len(keys) > 1:
            ax.legend(fontsize=8)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))  # one epoch read 0.96 to 1.04
        if epochs:
            ax.set_xlim(min(epochs) - 0.5, max(epochs) + 0.5)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plain_numbers(rows: list[dict]) -> list[dict]:
    """Floats to 6 significant digits: float32 values read 0.25999999046325684 in per_class.csv; an
    undefined value (NaN) is left empty."""
    return [{k: (float(f"{v:.6g}") if math.isfinite(v) else "") if isinstance(v, float) else v for k, v in r.items()}
            for r in rows]


def percent(value: float | int | str, width: int) -> str:
    """A fraction (a per_class row's value) as a percentage right-aligned in ``width`` characters; an
    undefined one (NaN) as '-'."""
    fraction = float(value)
    return f"{100 * fraction:{width}.2f}" if math.isfinite(fraction) else f"{'-':>{width}}"


def write_reports(folder: Path, per_class: list[dict], cm: torch.Tensor, classes: list[str],
                  annotate: str = "count") -> list[Path]:
    """per_class.csv, confusion_matrix.csv (rows: true class) and confusion_matrix.png in ``folder``."""
    from cnnkit.files import atomic_write_csv

    folder.mkdir(parents=True, exist_ok=True)
    per_class_csv, cm_csv = folder / "per_class.csv", folder / "confusion_matrix.csv"
    atomic_write_csv(per_class_csv, plain_numbers(per_class))
    rows = [{"true\\pred": name, **dict(zip(classes, row))} for name, row in zip(classes, cm.tolist())]
    atomic_write_csv(cm_csv, rows)
    return [per_class_csv, cm_csv, plot_confusion_matrix(cm, classes, folder / "confusion_matrix.png", annotate)]


def plot_pr_curves(precision, recall_thresholds, classes: list[str], path: Path, title: str) -> Path:
    """COCOeval precision ``(IoU, recall, class, area, maxdet)`` -> curves at IoU 0.50 and 0.75 (mean over
    classes with ground truth) and per class at IoU 0.50 when there are few classes."""
    fig, ax = plt.subplots(figsize=(6, 5))
    p = precision[:, :, :, 0, -1]
    for t, (iou, style) in enumerate(((0.50, "-"), (0.75, "--"))):
        index = 0 if t == 0 else 5  # IoU thresholds 0.50, 0.55, ..., 0.95
        curve = p[index]
        valid = (curve > -1).all(0)
        if valid.any():
            ax.plot(recall_thresholds, curve[:, valid].mean(1), style, lw=2, label=f"all classes, IoU {iou:.2f}")
    if 1 < len(classes) <= 10:
        for k, name in enumerate(classes):
            if (p[0, :, k] > -1).all():
                ax.plot(recall_thresholds, p[0, :, k], lw=1, alpha=0.7, label=f"{name}, IoU 0.50")
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.set_title(title)
    ax.legend(fontsize=8, loc="lower left")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path

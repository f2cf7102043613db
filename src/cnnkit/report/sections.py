"""The parts of a run report read from the run folder's files: the curves (metrics.csv), the task's own
figures (its CSV tables, JSON figures and PNG plots), the resolved config (config.yaml). Each returns a
``Section`` whose body says why when its files are missing. Torch-free."""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path
from typing import Any

from cnnkit.report.html import Section, figure, note, parsed, table

# metrics.csv columns that are bookkeeping, not figures of the model
BOOKKEEPING = ("epoch", "time_s", "train_s")
SHOWN_JSON_BYTES = 64_000  # larger JSON files in a run folder are predictions, not figures
# a run folder's files that are not the task's figures: the curves are redrawn, the rest are not results
NOT_FIGURES = {"metrics.csv", "results.png", "report.html", "config.yaml"}


def read_csv(path: Path) -> tuple[list[str], list[list[Any]]]:
    """A CSV file's header and rows (numbers parsed); ([], []) when it is empty."""
    with path.open(newline="") as f:
        rows = list(csv.reader(f))
    if not rows:
        return [], []
    return rows[0], [[parsed(cell) for cell in row] for row in rows[1:]]


def metric_groups(columns: list[str], monitor: str) -> list[tuple[str, list[str]]]:
    """metrics.csv's columns as charts: the losses, the monitored metric alone, the other figures (by prefix
    when several share one, as box_* and mask_*), the learning rate, the speed."""
    losses = [c for c in columns if "loss" in c]
    speed = [c for c in columns if c.endswith("_img_s")]
    rest = [c for c in columns if c not in (*losses, *speed, *BOOKKEEPING, "lr")]
    groups: list[tuple[str, list[str]]] = [("losses", losses)] if losses else []
    if monitor in rest:
        groups.append((f"{monitor} (monitored)", [monitor]))
    by_prefix: dict[str, list[str]] = {}
    for c in (c for c in rest if c != monitor):
        by_prefix.setdefault(c.split("_")[0] if "_" in c else "", []).append(c)
    lone = [c for prefix, cs in by_prefix.items() if len(cs) == 1 or not prefix for c in cs]
    groups += [(f"{prefix} metrics", cs) for prefix, cs in by_prefix.items() if prefix and len(cs) > 1]
    if lone:
        groups.append(("other metrics" if len(groups) > 1 else "metrics", lone))
    if "lr" in columns:
        groups.append(("learning rate", ["lr"]))
    if speed:
        groups.append(("speed (images/s)", speed))
    return groups


def chart(title: str, epochs: list[float], series: dict[str, list[float]], best_epoch: int) -> bytes:
    """One small line chart as PNG bytes (matplotlib's Agg, no pyplot state); the best epoch dashed."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    fig = Figure(figsize=(4.0, 2.7), dpi=100)
    ax = fig.add_subplot()
    for name, values in series.items():
        ax.plot(epochs, values, marker="o", ms=3, lw=1.5, label=name)
    if best_epoch:
        ax.axvline(best_epoch, color="#888", ls="--", lw=1, label=f"best epoch {best_epoch}")
    ax.set_title(title, fontsize=10)
    ax.set_xlabel("epoch", fontsize=9)
    ax.tick_params(labelsize=8)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
    if epochs:
        ax.set_xlim(min(epochs) - 0.5, max(epochs) + 0.5)
    ax.grid(alpha=0.3)
    if len(series) > 1 or best_epoch:
        ax.legend(fontsize=7)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()


def curves_section(folder: Path, monitor: str, best_epoch: int) -> Section:
    """One chart per group of metrics.csv's columns."""
    path = folder / "metrics.csv"
    if not path.is_file():
        return Section("curves", "Curves", note("no metrics.csv in the run folder: no curves to draw"))
    header, rows = read_csv(path)
    if not rows or "epoch" not in header:
        return Section("curves", "Curves", note("metrics.csv holds no finished epoch yet"))
    epochs = [float(r[header.index("epoch")]) for r in rows]

    def values(column: str) -> list[float]:
        k = header.index(column)
        return [float(r[k]) if k < len(r) and isinstance(r[k], (int, float)) else math.nan for r in rows]

    charts = [figure(chart(title, epochs, {c: values(c) for c in cols}, best_epoch), title, shown=False)
              for title, cols in metric_groups(header, monitor)]
    return Section("curves", "Curves", f'<div class="grid">{"".join(charts)}</div>')


def csv_block(path: Path) -> str:
    """A CSV file as a table; a confusion matrix shaded by row fraction; long ones scroll."""
    header, rows = read_csv(path)
    if not header:
        return note(f"{path.name} is empty")
    shades = None
    if path.stem.startswith("confusion_matrix"):
        shades = []
        for row in rows:
            counts = [v if isinstance(v, (int, float)) else 0 for v in row[1:]]
            total = sum(counts) or 1
            shades.append([c / total for c in counts])
    return table(header, rows, shades, scroll=len(rows) > 25 or len(header) > 16)


def flat(data: Any, prefix: str = "") -> list[tuple[str, Any]]:
    """Nested JSON as (dotted key, value) rows; long lists summarised."""
    if isinstance(data, dict):
        return [row for k, v in data.items() for row in flat(v, f"{prefix}{k}.")]
    if isinstance(data, list) and (len(data) > 10 or any(isinstance(v, (dict, list)) for v in data)):
        return [(prefix.rstrip("."), f"[{len(data)} values]")]
    return [(prefix.rstrip("."), data)]


def json_block(path: Path) -> str:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        return note(f"{path.name}: unreadable ({e})")
    return table(["figure", "value"], flat(data), scroll=True)


def roc_chart(path: Path) -> bytes | None:
    """roc.csv (far, tar): the ROC curve, FAR on a log axis."""
    header, rows = read_csv(path)
    if not {"far", "tar"} <= set(header) or not rows:
        return None
    from matplotlib.figure import Figure

    far = [r[header.index("far")] for r in rows]
    tar = [r[header.index("tar")] for r in rows]
    fig = Figure(figsize=(4.4, 3.2), dpi=100)
    ax = fig.add_subplot()
    ax.plot([max(f, 1e-6) for f in far], tar, lw=1.5)
    ax.set_xscale("log")
    ax.set_xlabel("false accept rate", fontsize=9)
    ax.set_ylabel("true accept rate", fontsize=9)
    ax.set_title("ROC", fontsize=10)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()


def figure_files(folder: Path) -> list[Path]:
    """The task's figures in ``folder``: per-class tables first, then the confusion matrix, then the rest."""
    files = [p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in (".csv", ".json", ".png")
             and p.name not in NOT_FIGURES and not p.name.startswith(".")
             and (p.suffix.lower() != ".json" or p.stat().st_size <= SHOWN_JSON_BYTES)]
    order = {"per_class": 0, "confusion_matrix": 1}
    return sorted(files, key=lambda p: (order.get(p.stem, 2), p.suffix.lower() == ".png", p.name))


def figures_body(folder: Path) -> str:
    """Each figure file of ``folder`` under its name: tables for CSV and JSON, the PNGs as they are."""
    parts, pictures = [], []
    for path in figure_files(folder):
        suffix = path.suffix.lower()
        if suffix == ".png":
            pictures.append(figure(path.read_bytes(), path.name))
            continue
        block = csv_block(path) if suffix == ".csv" else json_block(path)
        roc = roc_chart(path) if path.name == "roc.csv" else None
        if roc is not None:
            pictures.append(figure(roc, "ROC curve (roc.csv)"))
        parts.append(f"<h3>{path.name}</h3>{block}")
    if pictures:
        parts.append(f'<div class="grid" style="margin-top:12px">{"".join(pictures)}</div>')
    return "".join(parts)


def results_section(folder: Path, has_classes: bool) -> Section:
    """The task's figures from its best epoch's evaluation (and a test split's, scored once)."""
    body = figures_body(folder)
    test = folder / "test"
    if test.is_dir():
        scored = figures_body(test)
        if scored:
            body += "<h3>test split (scored once with best.pt)</h3>" + scored
    if not body:
        why = ("this task writes no per-class figures" if not has_classes
               else "no per-class figures in the run folder (a run stopped before its first evaluation?)")
        body = note(f"{why}: no confusion matrix or per-class table to show")
    return Section("results", "Validation figures", body)


def config_section(folder: Path) -> Section:
    """config.yaml, the resolved settings of the run, as a key/value table."""
    import yaml

    path = folder / "config.yaml"
    try:
        values = yaml.safe_load(path.read_text()) if path.is_file() else None
    except (OSError, yaml.YAMLError) as e:
        return Section("config", "Config", note(f"config.yaml: unreadable ({str(e).splitlines()[0]})"))
    if not isinstance(values, dict):
        return Section("config", "Config", note("no config.yaml in the run folder"))
    rows = []
    for key, value in values.items():
        text = value if not isinstance(value, (dict, list)) else yaml.safe_dump(value, default_flow_style=True,
                                                                                 width=10_000).strip()
        rows.append(f'<tr><td class="k">{_esc(key)}</td><td>{_esc("" if text is None else text)}</td></tr>')
    return Section("config", "Config", f'<div class="config"><table>{"".join(rows)}</table></div>',
                   ["config.yaml as the run resolved it: `cnnkit train <task> --config config.yaml` starts it again"])


def _esc(value: Any) -> str:
    from html import escape

    return escape(str(value))

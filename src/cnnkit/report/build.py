"""``write_report``: a run folder -> its self-contained ``report.html`` (``cnnkit report RUN``, and the end of
every training run). Torch is imported when the model loads."""

from __future__ import annotations

import csv
import math
from contextlib import nullcontext
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cnnkit.errors import CnnkitError
from cnnkit.files import atomic_write_bytes
from cnnkit.log import LOGGER
from cnnkit.report.html import Section, cards, note, number, page
from cnnkit.report.sections import BOOKKEEPING, config_section, curves_section, results_section

if TYPE_CHECKING:
    from cnnkit.loading import Model

MAX_CARDS = 6  # headline figures of the best epoch shown at the top (the monitored one first)


def checkpoint_of(folder: Path) -> Path:
    """The run's best.pt, else its last.pt; CnnkitError naming the folder and what it lacks."""
    if not folder.is_dir():
        raise CnnkitError(f"{folder}: not a folder; give a run folder of `cnnkit train` (runs/<task>/<name>)")
    for name in ("best.pt", "last.pt"):
        if (folder / name).is_file():
            return folder / name
    raise CnnkitError(f"{folder}: holds no best.pt or last.pt, so there is no model to report on; give a run folder "
                      "of `cnnkit train` (runs/<task>/<name>)")


def write_report(run: str | Path, images: int = 200, show: int = 8, explain: int = 4, device: str = "auto") -> Path:
    """Write ``<run>/report.html`` (atomically) and return its path.

    ``images``: validation items scored by the task's loss to find the worst (spread over the split); ``show``:
    how many of the worst are drawn; ``explain``: how many of those get a Grad-CAM map. Every section that cannot
    be made (no metrics.csv, no classes, data moved, a model that does not load) says why instead.
    Raises CnnkitError when ``run`` is not a folder holding best.pt or last.pt.
    """
    from cnnkit.report.scoring import threads_for
    from cnnkit.report.worst import worst_sections

    folder = Path(run)
    weights = checkpoint_of(folder)
    model, why = _load(weights, device)
    config = _config(folder, model)
    monitor = str(config.get("monitor", ""))
    best, epoch = _best_row(folder, model, monitor)
    has_classes = model is not None and len(model.meta.classes) > 1
    sections: list[Section] = [curves_section(folder, monitor, epoch), results_section(folder, has_classes)]
    with threads_for(model) if model is not None else nullcontext():
        sections += worst_sections(model, why, weights, images, show, explain)
        sections += [architecture_section(model, why), config_section(folder)]
    title = f"{folder.resolve().parent.name}/{folder.resolve().name}"  # <task>/<name>, as runs/ holds it
    html = page(title, _subtitle(config, model, weights), _headline(best, epoch, config, model, folder), sections,
                _footer(weights))
    path = folder / "report.html"
    try:
        atomic_write_bytes(path, html.encode("utf-8"))
    except OSError as e:  # the CLI's own OSError message names --out / --project, which report lacks
        raise CnnkitError(f"{e.filename or path}: {e.strerror or e}; report.html is written into RUN: make {folder} "
                          "writable, or copy the run folder somewhere you can write and report on the copy") from None
    return path


def report_after_training(run: str | Path, device: str = "auto") -> Path | None:
    """``write_report`` at the end of a training run: a failure is a warning, never the run's failure."""
    try:
        path = write_report(run, device=device)
    except Exception as e:  # noqa: BLE001 - the run is done and saved; its report is a convenience
        reason = (str(e).splitlines() or [type(e).__name__])[0][:200]
        LOGGER.warning("warning: %s: report.html not written (%s); `cnnkit report %s` tries again", run, reason, run)
        return None
    LOGGER.info("report: %s", path)
    return path


def architecture_section(model: Model | None, why: str) -> Section:
    """The network as a diagram (``cnnkit.models.diagram``), inline SVG."""
    title = "Architecture"
    if model is None:
        return Section("architecture", title, note(why))
    from cnnkit.models.summary import card_input_shape

    meta, net = model.meta, model.module.net
    params = sum(p.numel() for p in net.parameters())
    shape = card_input_shape(meta)  # as `cnnkit summary RUN` draws it
    said = note(f"{meta.model}: {params:,} parameters; input {list(shape)}")
    try:
        from cnnkit.models.diagram import diagram_svg
    except ImportError as e:
        return Section("architecture", title, said + note(f"no diagram: cnnkit.models.diagram is missing ({e})"))
    try:
        import copy

        named = f"{meta.model}, input {shape[1]}×{shape[2]}×{shape[3]}"  # the card's name, not the class's
        svg = diagram_svg(net if model.device.type == "cpu" else copy.deepcopy(net).cpu(), shape, named)
    except Exception as e:  # noqa: BLE001 - a network the diagram cannot trace still has the rest of its report
        return Section("architecture", title, said + note(f"no diagram: {(str(e).splitlines() or [''])[0][:200]}"))
    start = svg.find("<svg")
    if start < 0:
        return Section("architecture", title, said + note("no diagram: the diagram drawn was not SVG"))
    return Section("architecture", title, said + f'<div class="svg">{svg[start:]}</div>')


def _load(weights: Path, device: str) -> tuple[Model | None, str]:
    from cnnkit.loading import load_checkpoint_model

    try:
        return load_checkpoint_model(weights, device), ""
    except Exception as e:  # noqa: BLE001 - the files of the run are still worth a report
        return None, f"{weights.name} could not be loaded ({(str(e).splitlines() or [''])[0][:200]})"


def _config(folder: Path, model: Model | None) -> dict[str, Any]:
    """config.yaml's values, else the checkpoint's."""
    import yaml

    try:
        values = yaml.safe_load((folder / "config.yaml").read_text())
        if isinstance(values, dict):
            return values
    except (OSError, yaml.YAMLError):
        pass
    return dict(model.checkpoint.get("config", {})) if model is not None else {}


def _best_row(folder: Path, model: Model | None, monitor: str) -> tuple[dict[str, Any], int]:
    """The best epoch's metrics row and number: the checkpoint's, else metrics.csv's best by ``monitor``."""
    if model is not None and model.checkpoint.get("metrics"):
        row = dict(model.checkpoint["metrics"])
        return row, int(row.get("epoch", model.checkpoint.get("epoch", 0)))
    try:
        with (folder / "metrics.csv").open(newline="") as f:
            rows = [{k: _float(v) for k, v in r.items()} for r in csv.DictReader(f)]
    except OSError:
        return {}, 0
    rows = [r for r in rows if math.isfinite(r.get(monitor, math.nan))]
    if not rows:
        return {}, 0
    lower = "loss" in monitor or monitor == "eer" or monitor.endswith("_error")
    row = (min if lower else max)(rows, key=lambda r: r[monitor])
    return row, int(row.get("epoch", 0))


def _float(text: str | None) -> float:
    try:
        return float(text or "nan")
    except ValueError:
        return math.nan


def _headline(best: dict[str, Any], epoch: int, config: dict[str, Any], model: Model | None, folder: Path) -> str:
    monitor = str(config.get("monitor", ""))
    shown = [k for k in best if k not in (*BOOKKEEPING, "lr") and not k.endswith("_img_s")]
    shown = sorted(shown, key=lambda k: (k != monitor, "loss" in k))[:MAX_CARDS]
    figures = [(k, number(best[k])) for k in shown]
    if epoch:
        figures.append(("best epoch", f"{epoch} / {config.get('epochs', '?')}"))
    if model is not None:
        params = sum(p.numel() for p in model.module.parameters())
        figures.append(("parameters", f"{params / 1e6:.2f} M" if params >= 1e5 else f"{params:,}"))
    seconds = _training_seconds(folder)
    if seconds:
        figures.append(("training time", f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"))
    return cards(figures, monitor) if figures else ""


def _training_seconds(folder: Path) -> float:
    try:
        with (folder / "metrics.csv").open(newline="") as f:
            rows = list(csv.DictReader(f))
    except OSError:
        return 0.0
    return _float(rows[-1].get("time_s")) if rows else 0.0


def _subtitle(config: dict[str, Any], model: Model | None, weights: Path) -> str:
    task = model.meta.task if model is not None else config.get("task", "?")
    name = model.meta.model if model is not None else config.get("model", "?")
    date = datetime.fromtimestamp(weights.stat().st_mtime).strftime("%Y-%m-%d %H:%M")
    return " · ".join(str(p) for p in (task, name, f"data {config.get('data', '?')}", date) if p)


def _footer(weights: Path) -> str:
    from cnnkit import __version__

    return (f"cnnkit {__version__} · {weights.resolve()} · report written {datetime.now():%Y-%m-%d %H:%M}; "
            f"`cnnkit report {weights.resolve().parent}` writes it again")

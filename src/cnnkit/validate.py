"""Scoring a trained model on labelled data: ``cnnkit val`` and ``cnnkit.val()``.

A checkpoint runs on PyTorch; an .onnx or TorchScript file on its own runtime, with the task's own
data pipeline and metrics, so both are scored alike.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cnnkit.files import atomic_write_bytes, json_bytes, next_free
from cnnkit.options import make_options
from cnnkit.progress import progress_bar


@dataclass
class ValResult:
    """What ``val`` measured: ``metrics`` (the task's, as fractions 0..1), the report folder, the printed table."""

    metrics: dict[str, float]
    out: Path
    images: int
    table: str = ""
    runtime: str = "pytorch"
    extra: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> str:
        where = "" if self.runtime == "pytorch" else f" ({'onnxruntime' if self.runtime == 'onnx' else self.runtime})"
        return f"{self.images} images{where}; reports in {self.out}"


def validate(weights: str | Path, data: str | Path, split: str = "auto", batch: int = 64, device: str = "auto",
             workers: int = 0, skip_bad: bool = False, out: str | Path = "", options: dict[str, Any] | None = None,
             flags: bool = False) -> ValResult:
    """Score ``weights`` on ``data`` (any training layout) and write the reports (metrics.json, the task's
    tables and plots) to ``out`` (default: a new val/ folder beside the weights).

    ``options``: the task's evaluation options (``flags``: name them as command-line flags in errors).
    Raises CnnkitError on unreadable weights or data and on options the task does not take.
    """
    from cnnkit.loading import is_torchscript

    path = Path(weights)
    if path.suffix.lower() == ".onnx" or is_torchscript(path):
        return _validate_exported(path, data, split, out, options or {}, flags)
    from torch.utils.data import DataLoader

    from cnnkit.config import make_config
    from cnnkit.engine.loop import evaluate
    from cnnkit.loading import load_checkpoint_model

    model = load_checkpoint_model(path, device=device)
    chosen = make_options(model.task.options, options or {}, model.meta.task, flags=flags, evaluate=True)
    cfg = make_config({**model.checkpoint["config"], "data": str(data), "skip_bad": skip_bad, "batch": batch,
                       "resume": False}, origin=str(weights), saved=True)
    dataset = model.task.build_data(cfg, meta=model.meta, split=split)
    watch_sample(model.meta, dataset.val)
    loader = DataLoader(dataset.val, batch_size=batch, num_workers=workers, collate_fn=dataset.collate_fn)
    metrics = model.task.build_metrics(model.meta, model.device, chosen)
    shown = progress_bar(loader, total=len(loader), desc="val", unit="batch")
    results = evaluate(model.module, shown, metrics, device=model.device, forward=model.task.eval_forward(chosen))
    folder = Path(out) if out else next_free(path.resolve().parent / "val")
    metrics.save(folder)
    atomic_write_bytes(folder / "metrics.json", json_bytes(results, indent=2))
    return ValResult(dict(results), folder, len(dataset.val), metrics.table() or "")


def _validate_exported(path: Path, data: str | Path, split: str, out: str | Path, options: dict[str, Any],
                       flags: bool) -> ValResult:
    """An exported model (onnxruntime or TorchScript); the data and the metrics are the task's own (with torch)."""
    from cnnkit.export.runtime import ExportedModel
    from cnnkit.export.verify import score_on_data
    from cnnkit.loading import load
    from cnnkit.tasks import get_task

    model = load(path)
    assert isinstance(model, ExportedModel)  # an .onnx or TorchScript file loads as one
    # refuse what an exported file cannot honour
    make_options(model.options_type, options, model.meta.task, model.runtime, flags=flags, evaluate=True)
    scored = score_on_data(model.run, model.input_shape, get_task(model.meta.task), model.meta, model.config,
                           str(data), split=split)
    folder = Path(out) if out else next_free(path.resolve().parent / "val")
    scored["report"].save(folder)
    results = scored["metrics"]["exported"]
    atomic_write_bytes(folder / "metrics.json", json_bytes(results, indent=2))
    return ValResult(dict(results), folder, scored["images"], scored["report"].table(), model.runtime)


def watch_sample(meta: Any, dataset: Any, count: int = 20) -> None:
    """Inputs far from what the model trained on are said (a sample of the images to be scored)."""
    import numpy as np

    from cnnkit.data.inputs import InputWatch, source_images

    images, watch = source_images(dataset), InputWatch(meta)
    for i in sorted({int(i) for i in np.linspace(0, len(images) - 1, min(count, len(images)))}):
        watch.check(images[i], str(images[i]) if isinstance(images[i], Path) else "")

"""The Python API, mirroring the CLI: ``train``, ``load``, ``export`` and ``Model.predict``.

Names are resolved here, at the edge: ``train_with`` finds the task in the registry and hands the
task object to the engine (``fit(cfg, task)``), which imports no task. Torch is imported on first
use, so that ``load("model.onnx")`` runs on onnxruntime without it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cnnkit.config import TrainConfig, load_yaml, make_config
from cnnkit.data.images import iter_sources  # noqa: F401 - iter_sources is part of the API
from cnnkit.errors import CnnkitError
from cnnkit.loading import Model, is_torchscript, load, load_checkpoint_model, task_parts  # noqa: F401 - the API
from cnnkit.results import Result
from cnnkit.tasks import get_spec, get_task, model_kind, task_names, task_of_kind
from cnnkit.validate import ValResult

if TYPE_CHECKING:
    from cnnkit.engine.trainer import TrainResult


def train(config: str | Path | TrainConfig | None = None, **overrides: Any) -> TrainResult:
    """Train from a recipe file and/or keyword overrides of :class:`TrainConfig` fields and the task's own
    training options (``cnnkit train <task> --help`` lists both; another task's option is refused by name).

    >>> cnnkit.train(task="classify", data="shapes", model="fastnet_small", epochs=3)

    ``config`` may also be a ``TrainConfig`` (made with ``make_config``), trained as it is.
    """
    if isinstance(config, TrainConfig):
        if overrides:
            raise CnnkitError("cnnkit.train(TrainConfig, ...): give the config alone, or its fields as keywords")
        return train_with(config)
    if config is not None and not isinstance(config, (str, Path)):
        raise CnnkitError(f"cnnkit.train: config must be a recipe file's path or a TrainConfig, got "
                          f"{type(config).__name__}")
    values = load_yaml(config, task=str(overrides.get("task", ""))) if config else {}
    values.update(overrides)
    if values.get("resume") and "epochs" not in values:
        values["epochs"] = 0  # a resumed run keeps its own number of epochs
    return train_with(make_config(with_task_defaults(values)))


def with_task_defaults(values: dict[str, Any]) -> dict[str, Any]:
    """``values`` with the task's own defaults of common fields (its model, and pretraining's optimiser) for those
    not given; a resumed run keeps its own."""
    from cnnkit.config import config_fields

    spec = get_spec(str(values.get("task") or task_names()[0]))
    if values.get("resume"):
        return values
    fields = {f.name for f in config_fields()}
    given = {k.replace("-", "_") for k in values}
    return {**{k: v for k, v in spec.defaults.items() if k in fields and k not in given}, **values}


def train_with(cfg: TrainConfig, on_epoch_end: Callable[[int, dict], None] | None = None) -> TrainResult:
    """Train a resolved config (``make_config`` has checked its options against its task): its task found by
    name, its model checked before any data is read (a resumed run takes its model from its own config, checked
    when it started). The run folder's ``report.html`` is written when training ends (``cnnkit.report``)."""
    from cnnkit.data.images import set_max_pixels
    from cnnkit.engine.trainer import fit

    task = get_task(cfg.task)
    if not cfg.resume:
        check_model(cfg, task.name)
    set_max_pixels(cfg.max_pixels)
    result = fit(cfg, task, on_epoch_end)
    if result.is_main:  # the run folder's report.html; a failure to write it is a warning, never the run's
        from cnnkit.report import report_after_training

        report_after_training(result.run_dir, cfg.device)
    return result


def check_model(cfg: TrainConfig, task: str) -> None:
    """``cfg.model`` is a model of ``task``, and ``--pretrained`` fits it; else CnnkitError in one line."""
    from cnnkit.models import accepts, get_entry, list_models
    from cnnkit.models.registry import WRAPPERS
    from cnnkit.models.wrapper import read_cnnkit_checkpoint

    entry = get_entry(cfg.model)
    if entry.kind in WRAPPERS:
        raise CnnkitError(f"--model {cfg.model}: a network built around another model's encoder, not a model to "
                          f"train; give the model whose encoder to train (`cnnkit train {task} --model resnet18`)")
    if entry.kind != model_kind(task) and not get_spec(task).args.get("any_model"):
        some = ", ".join(list_models(model_kind(task))[:4])
        article = "an" if task[:1] in "aeiou" else "a"
        raise CnnkitError(f"--model {cfg.model}: a {task_of_kind(entry.kind)} model, not {task}; pick {article} "
                          f"{task} model such as {some} (`cnnkit models --task {task}` lists them)")
    if cfg.pretrained not in ("", "torchvision") and not Path(cfg.pretrained).is_file():
        raise CnnkitError(f"--pretrained {cfg.pretrained}: file not found; give a weights file, 'torchvision', "
                          "or drop --pretrained")
    ours = bool(cfg.pretrained) and read_cnnkit_checkpoint(cfg.pretrained) is not None  # its encoder fits any model
    if cfg.pretrained and not ours and not accepts(cfg.model, "pretrained"):
        raise CnnkitError(f"--pretrained {cfg.pretrained}: not a cnnkit checkpoint, and {cfg.model} takes no other "
                          "weights; give a cnnkit run's best.pt (a pretrain run's, say), or pick a torchvision "
                          "backbone such as resnet18")
    freeze = getattr(cfg.options, "freeze_epochs", 0)  # an option of the tasks that fine-tune an encoder
    if freeze and not cfg.pretrained:
        raise CnnkitError("--freeze-epochs: there is no pretrained encoder to keep fixed; add --pretrained, or drop "
                          "--freeze-epochs")
    if freeze >= cfg.epochs > 0:
        raise CnnkitError(f"--freeze-epochs {freeze}: the encoder would never train in {cfg.epochs} epoch(s); "
                          "give more --epochs than --freeze-epochs (1 or 2 frozen epochs of 10 is usual)")


def export(weights: str | Path, format: str = "onnx", imgsz: int = 0, dynamic: bool = False, half: bool = False,
           out: str | Path = "") -> tuple[Path, dict[str, str]]:
    """Export a checkpoint to ONNX or TorchScript (``cnnkit export``); returns the file and its metadata."""
    from cnnkit.export.exporter import export_model

    return export_model(load_checkpoint_model(weights, "cpu"), weights, format, imgsz, dynamic, half, out)


def val(weights: str | Path, data: str | Path, split: str = "auto", batch: int = 64, device: str = "auto",
        workers: int = 0, out: str | Path = "", verbose: bool = True, **options: Any) -> ValResult:
    """Score a checkpoint, .onnx or TorchScript file on labelled data, as ``cnnkit val`` does.

    ``data``: any training layout; ``split``: auto, val, train, test or all; ``options``: the task's
    evaluation options (``iou``, ``tta``, ...). Returns a :class:`cnnkit.validate.ValResult`: ``.metrics``
    (fractions 0..1) and ``.out``, the folder of reports. ``verbose`` prints the table.

    >>> cnnkit.val("runs/segment/exp/best.pt", "street/").metrics["miou"]
    """
    from cnnkit.validate import validate

    done = validate(weights, data, split, batch, device, workers, False, out, options)
    if verbose:
        print("\n".join([t for t in (done.table,) if t] + [done.summary()]))
    return done


__all__ = ["Model", "Result", "TrainConfig", "ValResult", "export", "is_torchscript",
           "iter_sources", "load", "load_checkpoint_model", "train", "train_with", "val"]


"""Run configuration: one frozen dataclass; YAML and the CLI only override its fields.

Every field has a default, a unit and a one-line reason in its ``help``. An unknown key is an
error (with a "did you mean"), and nothing is ever evaluated: YAML is read with ``safe_load``.
"""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from cnnkit.errors import CnnkitError, did_you_mean


def _f(default: Any, help: str, **kw: Any) -> Any:
    if isinstance(default, (dict, list)):
        return field(default_factory=lambda: type(default)(default), metadata={"help": help, **kw})
    return field(default=default, metadata={"help": help, **kw})


@dataclass(frozen=True)
class TrainConfig:
    """Everything a training run needs; saved as ``config.yaml`` in the run folder."""

    task: str = _f("classify", "task to train (`cnnkit train --help` lists them); chooses data, loss, metrics and "
                               "predictor")
    data: str = _f("", "data: a folder (per task layout), a CSV of path,label, an IDX folder, or 'shapes' (synthetic)")
    model: str = _f("basic_cnn", "registered model name; `cnnkit models` lists them")
    model_args: dict = _f({}, "extra keyword arguments for the model builder (YAML only)")
    pretrained: str = _f("", "'' for random init, a local weights file, or 'torchvision' (needs network)")
    epochs: int = _f(10, "number of passes over the training split (epochs)")
    batch: int = _f(64, "images per optimisation step, summed over all processes (images)")
    imgsz: int = _f(0, "square input side (classify), or the side of the training crop (segment, instance, "
                       "detect) (pixels); 0 keeps the native size")
    max_size: int = _f(0, "shrink images whose longer side exceeds this before training and prediction (pixels); "
                          "0 keeps full resolution", task_only=True)
    optimizer: str = _f("sgd", "sgd (Nesterov momentum) or adamw", choices=("sgd", "adamw"))
    lr: float = _f(0.05, "peak learning rate for batch --batch (1/step)")
    momentum: float = _f(0.9, "SGD momentum / AdamW beta1 (unitless)")
    weight_decay: float = _f(5e-4, "L2 penalty on weights, not on norms or biases (unitless)")
    schedule: str = _f("onecycle", "learning-rate shape after warm-up", choices=("cosine", "onecycle", "constant"))
    warmup_epochs: float = _f(1.0, "linear warm-up length (epochs); steadies early large-batch steps")
    label_smoothing: float = _f(0.0, "cross-entropy target smoothing (probability mass)", task_only=True)
    loss: str = _f("", "training loss (the task's choices below); empty = the task's own (cross-entropy)",
                   choices=("", "ce", "dice", "focal", "ce+dice"), task_only=True)
    class_weights: str = _f("none", "segment: loss weight per class: none, median (SegNet's median frequency), "
                                    "inverse (frequency), or numbers w0,w1,... (from the training split)",
                       task_only=True)
    ignore_index: int = _f(255, "segment: mask value that counts in neither loss nor metrics (VOC 255, CamVid 11)",
                           task_only=True)
    binary: bool = _f(False, "segment: binary masks (0 background, >0 foreground) and a one-class sigmoid head",
                      task_only=True)
    classes_file: str = _f("", "segment: CSV of index,name,r,g,b (default: classes.csv in the data folder)",
                           task_only=True)
    method: str = _f("simclr", "pretrain: self-supervised method: simclr or vicreg (two augmented views agree), or "
                               "mae (masked autoencoder: rebuild blanked patches)",
                     choices=("simclr", "vicreg", "mae"), task_only=True)
    val: str = _f("", "pretrain: labelled images (class folders, CSV, IDX) scored by k-NN on the embedding after each "
                      "epoch; empty = a held-out part of --data, loss and spread only", task_only=True)
    shift_augment: bool = _f(False, "instance, detect: also random colour inversion, grey conversion and strong "
                                    "colour jitter, for test images from other stains, microscopes or cameras",
                             task_only=True)
    freeze_epochs: int = _f(0, "classify, segment, instance, detect: epochs at the start in which the --pretrained "
                               "encoder stays fixed and only the new decoder and head learn (fastai's fine_tune): "
                               "a random head's first gradients do not wreck the encoder; 0 = all layers from step 1",
                            task_only=True)
    grad_clip: float = _f(0.0, "clip the global gradient norm to this value; 0 disables (L2 norm)")
    ema: float = _f(0.0, "decay of the exponential moving average of weights; 0 disables (per step)")
    augment: str = _f("light", "augmentation preset", choices=("none", "light", "standard", "strong"))
    val_split: float = _f(0.0, "fraction held out for validation when the data has no val split; 0 = the "
                               "task's default")
    val_group: str = _f("", "hold out whole groups (sequence, patient, camera): a regular expression on each "
                            "file's path whose first group (or whole match) names its group; empty = single images")
    mean: list = _f([], "per-channel mean of 0..1 pixels; empty = computed on the training split")
    std: list = _f([], "per-channel std of 0..1 pixels; empty = computed on the training split")
    tta: bool = _f(False, "average predictions over a horizontal flip at validation and prediction", task_only=True)
    device: str = _f("auto", "auto, cpu, cuda, cuda:N, N (a CUDA index) or mps")
    workers: int = _f(0, "DataLoader worker processes; 0 loads in the main process")
    seed: int = _f(0, "random seed for weights, splits, shuffling and augmentation")
    deterministic: bool = _f(False, "use deterministic algorithms so a run repeats bit for bit")
    amp: bool = _f(False, "mixed precision (bfloat16 on CPU, float16 on CUDA)")
    compile: bool = _f(False, "wrap the model in torch.compile (slower start, faster steps)")
    channels_last: bool = _f(False, "NHWC memory format; faster convolutions on many CPUs and GPUs")
    patience: int = _f(0, "stop after this many epochs without improvement; 0 disables (epochs)")
    save_period: float = _f(10.0, "minutes between checkpoints inside an epoch (last.pt), which --resume continues "
                                  "from mid-epoch; 0 = at epoch ends only")
    monitor: str = _f("", "metric that picks best.pt and drives early stopping; empty = the task's main one; "
                           "higher is better, lower for names with 'loss'")
    skip_bad: bool = _f(False, "skip unreadable images with a warning instead of stopping")
    max_pixels: int = _f(180_000_000, "largest image read (pixels, from its header, before decoding); a larger one "
                                      "is refused as a possible decompression bomb (Pillow's own limit)")
    cache: str = _f("auto", "decode images once into memory: auto (if small), ram, or none",
                    choices=("auto", "ram", "none"))
    project: str = _f("runs", "folder that holds the runs; a run is <project>/<task>/<name>")
    name: str = _f("", "run name; empty picks exp, exp2, ...")
    resume: bool = _f(False, "continue the run <project>/<task>/<name> from its last.pt")
    exist_ok: bool = _f(False, "reuse the run folder <name> even if it exists")
    verbose: bool = _f(True, "print a progress bar and per-epoch lines")


def config_fields() -> list[dataclasses.Field]:
    return list(dataclasses.fields(TrainConfig))


def default_of(name: str) -> Any:
    f = {f.name: f for f in config_fields()}[name]
    return f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[operator]


# fields that only some tasks take (each task's spec lists its own in TaskSpec.config); the rest are common
TASK_FIELDS = tuple(f.name for f in config_fields() if f.metadata.get("task_only"))


def _coerce(f: dataclasses.Field, value: Any, origin: str) -> Any:
    default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[operator]
    kind = type(default)
    if value is None:
        return default
    try:
        if kind is bool:
            if isinstance(value, str):
                if value.lower() not in ("true", "false", "1", "0", "yes", "no"):
                    raise ValueError(value)
                return value.lower() in ("true", "1", "yes")
            return bool(value)
        if kind is int and isinstance(value, float) and not value.is_integer():
            raise ValueError(value)  # epochs: 1.5 is not silently cut to 1
        if kind in (int, float):
            return _finite(kind(value))
        if kind is list:
            return [_finite(float(v)) for v in (value if isinstance(value, (list, tuple)) else str(value).split(","))]
        if kind is dict:
            if not isinstance(value, dict):
                raise ValueError(value)
            return dict(value)
        return str(value)
    except (TypeError, ValueError):
        what = {int: "a whole number", float: "a finite number", list: "finite numbers", bool: "true or false",
                dict: "a mapping"}.get(kind, f"a {kind.__name__}")
        raise CnnkitError(f"{origin}: {_name(f.name, origin)} must be {what}, got {value!r}") from None


def _finite(value: float) -> float:
    if not math.isfinite(value):
        raise ValueError(value)  # NaN passes every range check; refused with the field's name
    return value


def make_config(overrides: dict[str, Any] | None = None, origin: str = "arguments", **kw: Any) -> TrainConfig:
    """Build a TrainConfig from defaults plus ``overrides``; unknown keys and bad values raise CnnkitError."""
    values = dict(overrides or {}, **kw)
    by_name = {f.name: f for f in config_fields()}
    out = {}
    for key, value in values.items():
        key = key.replace("-", "_")
        if key not in by_name:
            raise CnnkitError(f"{origin}: unknown config key '{key}'.{did_you_mean(key, by_name)}")
        f = by_name[key]
        out[key] = _coerce(f, value, origin)
        check_value(key, out[key], origin)
    if bool(out.get("mean")) != bool(out.get("std")):
        raise CnnkitError(f"{origin}: give both {_name('mean', origin)} and {_name('std', origin)}, or neither "
                          "(then both are computed on the training split)")
    return TrainConfig(**out)


def _name(key: str, origin: str) -> str:
    """How the user wrote a field: ``--batch`` on the command line, ``'batch'`` in a recipe."""
    return "--" + key.replace("_", "-") if origin == "command line" else f"'{key}'"


DEVICE = re.compile(r"auto|cpu|mps|cuda(:\d+)?|\d+")


def check_value(key: str, value: Any, origin: str = "command line") -> None:
    """Refuse a value outside its field's choices or range, in one line that names the flag or key."""
    name, f = _name(key, origin), {f.name: f for f in config_fields()}[key]
    choices = f.metadata.get("choices")
    if choices and value not in choices:
        raise CnnkitError(f"{origin}: {name} must be one of {', '.join(choices)}, got {value!r}")
    low, high = RANGES.get(key, (None, None))
    values = value if isinstance(value, list) else [value]
    for v in values:
        if (low is not None and v < low) or (high is not None and v >= high):
            bounds = f"at least {low}" + (f" and below {high}" if high is not None else "")
            raise CnnkitError(f"{origin}: {name} must be {bounds}, got {value!r}")
    if key == "std" and any(v <= 0 for v in values):
        raise CnnkitError(f"{origin}: {name} values must be above 0 (they divide the pixels), got {value!r}")
    if key == "device" and not DEVICE.fullmatch(value):
        hint = " (PyTorch calls a GPU 'cuda')" if value.lower() in ("gpu", "cuda0", "nvidia") else ""
        raise CnnkitError(f"{origin}: {name} {value!r} is not a device{hint}; use auto, cpu, cuda, cuda:N, "
                          "a CUDA index such as 0, or mps")


# value ranges [low, high) of numeric fields: a negative learning rate or a batch of 0 is refused here
RANGES = {"batch": (1, None), "val_split": (0.0, 1.0), "lr": (0.0, None), "epochs": (0, None),
          "weight_decay": (0.0, None), "warmup_epochs": (0.0, None), "workers": (0, None), "patience": (0, None),
          "save_period": (0.0, None), "imgsz": (0, None), "max_size": (0, None), "momentum": (0.0, 1.0),
          "ema": (0.0, 1.0), "label_smoothing": (0.0, 1.0), "grad_clip": (0.0, None), "ignore_index": (0, 65536),
          "mean": (0.0, 1.000001), "std": (0.0, None), "max_pixels": (1, None), "seed": (0, 2**63)}


RECIPES = Path(__file__).parent / "recipes"  # the recipes measured in benchmarks/RESULTS.md, shipped in the wheel


def recipe_names() -> list[str]:
    return sorted(p.stem for p in RECIPES.glob("*.yaml"))


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a recipe: a YAML file, or the name of one that ships with cnnkit (``dsb2018_maskrcnn``; see
    ``recipe_names()``), a flat mapping of TrainConfig fields."""
    path = Path(path)
    if not path.is_file() and len(path.parts) == 1 and (RECIPES / f"{path.stem}.yaml").is_file():
        path = RECIPES / f"{path.stem}.yaml"
    if not path.is_file():
        raise CnnkitError(f"{path}: config file not found; check the path given to --config, or name a recipe that "
                          f"ships with cnnkit: {', '.join(recipe_names())}")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise CnnkitError(f"{path}: not valid YAML ({str(e).splitlines()[0]}); fix the file") from None
    if not isinstance(data, dict):
        raise CnnkitError(f"{path}: expected a mapping of config keys, got {type(data).__name__}")
    make_config(data, origin=str(path))  # validate keys and types now, naming the file
    return data


def to_dict(cfg: TrainConfig) -> dict[str, Any]:
    return dataclasses.asdict(cfg)


def save_yaml(cfg: TrainConfig, path: Path) -> None:
    from cnnkit.files import atomic_write_bytes

    atomic_write_bytes(path, yaml.safe_dump(to_dict(cfg), sort_keys=False).encode())

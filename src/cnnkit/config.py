"""Run configuration: one frozen dataclass; YAML and the CLI only override its fields.

``TrainConfig`` holds the fields every task takes; ``TrainConfig.options`` holds the task's own
training options, a frozen dataclass that the task declares (``TaskSpec.train_options``) and
``cnnkit.tasks.register_task`` names here: this module knows no task. Recipes, config.yaml and
checkpoints keep both flat, side by side. Every field has a default, a unit and a one-line reason
in its ``help``. An unknown key is an error (with a "did you mean"), another task's option is
refused by name, and nothing is ever evaluated: YAML is read with ``safe_load``.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Collection
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

    task: str = _f("", "task to train (`cnnkit train --help` lists them); chooses data, loss, metrics and "
                       "predictor; empty = the first registered")
    data: str = _f("", "data: a folder (per task layout), a CSV of path,label, an IDX folder, or 'shapes' (synthetic)")
    model: str = _f("basic_cnn", "registered model name; `cnnkit models` lists them")
    model_args: dict = _f({}, "extra keyword arguments for the model builder (YAML only)")
    pretrained: str = _f("", "'' for random init, a local weights file, or 'torchvision' (needs network)")
    epochs: int = _f(10, "number of passes over the training split (epochs)")
    batch: int = _f(64, "images per optimisation step, summed over all processes (images)")
    imgsz: int = _f(0, "square input side, or the side of the training crop for the tasks that crop (pixels); "
                       "0 keeps the native size")
    optimizer: str = _f("sgd", "sgd (Nesterov momentum) or adamw", choices=("sgd", "adamw"))
    lr: float = _f(0.05, "peak learning rate for batch --batch (1/step)")
    momentum: float = _f(0.9, "SGD momentum / AdamW beta1 (unitless)")
    weight_decay: float = _f(5e-4, "L2 penalty on weights, not on norms or biases (unitless)")
    schedule: str = _f("onecycle", "learning-rate shape after warm-up", choices=("cosine", "onecycle", "constant"))
    warmup_epochs: float = _f(1.0, "linear warm-up length (epochs); steadies early large-batch steps")
    grad_clip: float = _f(0.0, "clip the global gradient norm to this value; 0 disables (L2 norm)")
    ema: float = _f(0.0, "decay of the exponential moving average of weights; 0 disables (per step)")
    val_split: float = _f(0.0, "fraction held out for validation when the data has no val split; 0 = the "
                               "task's default")
    val_group: str = _f("", "hold out whole groups (sequence, patient, camera): a regular expression on each "
                            "file's path whose first group (or whole match) names its group; empty = single images")
    mean: list = _f([], "per-channel mean of 0..1 pixels; empty = computed on the training split")
    std: list = _f([], "per-channel std of 0..1 pixels; empty = computed on the training split")
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
    # the task's own training options: an instance of its TrainOptions (TaskSpec.train_options), filled in from
    # the task when not given; config.yaml and the checkpoint keep its fields flat, beside the common ones
    options: Any = field(default=None, metadata={"help": "the task's own training options"})

    def __post_init__(self) -> None:
        task = self.task or next(iter(_TASK_OPTIONS), "")
        object.__setattr__(self, "task", task)
        if self.options is None:
            object.__setattr__(self, "options", options_type(task)())
        elif _TASK_OPTIONS and not isinstance(self.options, options_type(task)):
            kind = options_type(task).__name__
            raise CnnkitError(f"TrainConfig(options=...): {task}'s options are a {kind}, got "
                              f"{type(self.options).__name__}; build the config with make_config({{...}}), or pass "
                              f"options={kind}(...)")


@dataclass(frozen=True)
class NoTrainOptions:
    """A task that takes no training options beyond the common ones."""


# task name -> its TrainOptions dataclass, declared by cnnkit.tasks.register_task: this module knows no task
_TASK_OPTIONS: dict[str, type] = {}

# the task fields every config.yaml and checkpoint held before each task declared its own (all of them, at their
# defaults for the tasks that did not take them): read from such a saved config and dropped
LEGACY_TASK_FIELDS = ("max_size", "label_smoothing", "loss", "class_weights", "ignore_index", "binary",
                      "classes_file", "method", "val", "shift_augment", "freeze_epochs", "augment", "tta")


def declare_task_options(task: str, options: type | None) -> None:
    """The training options ``task`` takes (``cnnkit.tasks.register_task`` calls this); None forgets them."""
    if options is None:
        _TASK_OPTIONS.pop(task, None)
    else:
        _TASK_OPTIONS[task] = options


def options_type(task: str) -> type:
    """The TrainOptions dataclass of ``task``; a task not (yet) registered takes none."""
    return _TASK_OPTIONS.get(task, NoTrainOptions)


def option_fields(task: str) -> list[dataclasses.Field]:
    return list(dataclasses.fields(options_type(task)))


def config_fields() -> list[dataclasses.Field]:
    """The common fields, every task's (the task's own options are ``option_fields(task)``)."""
    return [f for f in dataclasses.fields(TrainConfig) if f.name != "options"]


def default_of(name: str, task: str = "") -> Any:
    """The default of a common field, or of one of ``task``'s options."""
    f = {f.name: f for f in config_fields() + option_fields(task)}[name]
    return f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[operator]


def owners_of(key: str) -> list[str]:
    """The registered tasks whose training options include ``key``."""
    return [t for t, options in _TASK_OPTIONS.items() if key in {f.name for f in dataclasses.fields(options)}]


def _coerce(f: dataclasses.Field, value: Any, origin: str, name: str) -> Any:
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
        raise CnnkitError(f"{origin}: {name} must be {what}, got {value!r}") from None


def _finite(value: float) -> float:
    if not math.isfinite(value):
        raise ValueError(value)  # NaN passes every range check; refused with the field's name
    return value


def make_config(overrides: dict[str, Any] | None = None, origin: str = "arguments", flags: Collection[str] = (),
                saved: bool = False, **kw: Any) -> TrainConfig:
    """Build a TrainConfig from defaults plus ``overrides``, a flat mapping of common fields and the task's own
    options; unknown keys, another task's options and bad values raise CnnkitError in one line.

    ``flags``: the keys given as command-line flags (named ``--x`` in errors, the others as keys of ``origin``);
    ``saved``: a run's own config.yaml or checkpoint, where other tasks' fields of earlier releases are dropped.
    """
    values = {k.replace("-", "_"): v for k, v in dict(overrides or {}, **kw).items()}
    task = str(values.get("task") or next(iter(_TASK_OPTIONS), ""))
    common = {f.name: f for f in config_fields()}
    own = {f.name: f for f in option_fields(task)}
    out, chosen = {}, {}
    for key, value in values.items():
        where = "command line" if key in flags else origin  # a flag given over a recipe is the command line's
        name = _name(key, where)
        if key in common:
            out[key] = _coerce(common[key], value, where, name)
            check_value(key, out[key], where, name)
        elif key in own:
            chosen[key] = _coerce(own[key], value, where, name)
            _check_option(own[key], chosen[key], where, name)
        elif saved and key in LEGACY_TASK_FIELDS:
            continue  # an earlier release saved every task's fields
        elif owners_of(key):
            owners = owners_of(key)
            who = " and ".join([", ".join(owners[:-1]), owners[-1]] if len(owners) > 1 else owners)
            raise CnnkitError(f"{where}: {name} is an option of {who}, not {task}; drop it (`cnnkit train {task} "
                              "--help` lists the options it takes)")
        else:
            hint = "" if _TASK_OPTIONS else " No task is registered yet: import cnnkit.tasks (or cnnkit.api) first."
            raise CnnkitError(f"{where}: unknown config key '{key}'.{did_you_mean(key, {**common, **own})}{hint}")
    if bool(out.get("mean")) != bool(out.get("std")):
        raise CnnkitError(f"{origin}: give both {_name('mean', origin, flags)} and {_name('std', origin, flags)}, "
                          "or neither (then both are computed on the training split)")
    try:
        options = options_type(task)(**chosen)  # its __post_init__ may check fields together
    except ValueError as e:
        raise CnnkitError(f"{origin}: {e}") from None
    return TrainConfig(**{**out, "task": task}, options=options)


def _name(key: str, origin: str, flags: Collection[str] = ()) -> str:
    """How the user wrote a field: ``--batch`` on the command line, ``'batch'`` in a recipe."""
    return "--" + key.replace("_", "-") if origin == "command line" or key in flags else f"'{key}'"


DEVICE = re.compile(r"auto|cpu|mps|cuda(:\d+)?|\d+")


def check_value(key: str, value: Any, origin: str = "command line", name: str = "") -> None:
    """Refuse a value outside its common field's choices or range, in one line that names the flag or key."""
    name, f = name or _name(key, origin), {f.name: f for f in config_fields()}[key]
    choices = f.metadata.get("choices")
    if choices and value not in choices:
        raise CnnkitError(f"{origin}: {name} must be one of {', '.join(choices)}, got {value!r}")
    low, high = RANGES.get(key, (None, None))
    values = value if isinstance(value, list) else [value]
    for v in values:
        if (low is not None and v < low) or (high is not None and v >= high):
            bounds = f"at least {low}" + (f" and below {high}" if high is not None else "")
            raise CnnkitError(f"{origin}: {name} must be {bounds}, got {value!r}")
    if key == "lr" and value == 0:
        raise CnnkitError(f"{origin}: {name} 0: the weights would never change; give a learning rate above 0")
    if key == "std" and any(v <= 0 for v in values):
        raise CnnkitError(f"{origin}: {name} values must be above 0 (they divide the pixels), got {value!r}")
    if key == "device" and not DEVICE.fullmatch(value):
        hint = " (PyTorch calls a GPU 'cuda')" if value.lower() in ("gpu", "cuda0", "nvidia") else ""
        raise CnnkitError(f"{origin}: {name} {value!r} is not a device{hint}; use auto, cpu, cuda, cuda:N, "
                          "a CUDA index such as 0, or mps")


def _check_option(f: dataclasses.Field, value: Any, origin: str, name: str) -> None:
    """A task's option against its choices and range (``cnnkit.options.option``)."""
    m = f.metadata
    if m.get("choices") and value not in m["choices"]:
        shown = ", ".join(str(c) for c in m["choices"] if c != "")  # '' (the task's own) is never asked for
        raise CnnkitError(f"{origin}: {name} must be one of {shown}, got {value!r}")
    low, high, below = m.get("low"), m.get("high"), m.get("below")
    if low is not None and value < low:
        raise CnnkitError(f"{origin}: {name} must be at least {low}, got {value!r}")
    if high is not None and value > high:
        raise CnnkitError(f"{origin}: {name} must be at most {high}, got {value!r}")
    if below is not None and value >= below:
        raise CnnkitError(f"{origin}: {name} must be below {below}, got {value!r}")


# value ranges [low, high) of numeric fields: a negative learning rate or a batch of 0 is refused here
RANGES = {"batch": (1, None), "val_split": (0.0, 1.0), "lr": (0.0, None), "epochs": (0, None),
          "weight_decay": (0.0, None), "warmup_epochs": (0.0, None), "workers": (0, None), "patience": (0, None),
          "save_period": (0.0, None), "imgsz": (0, None), "momentum": (0.0, 1.0), "ema": (0.0, 1.0),
          "grad_clip": (0.0, None), "mean": (0.0, 1.000001), "std": (0.0, None), "max_pixels": (1, None),
          "seed": (0, 2**63)}


RECIPES = Path(__file__).parent / "recipes"  # the recipes measured in benchmarks/RESULTS.md, shipped in the wheel


def recipe_names() -> list[str]:
    return sorted(p.stem for p in RECIPES.glob("*.yaml"))


def load_yaml(path: str | Path, task: str = "", saved: bool = False) -> dict[str, Any]:
    """Read a recipe: a YAML file, or the name of one that ships with cnnkit (``dsb2018_maskrcnn``; see
    ``recipe_names()``), a flat mapping of TrainConfig fields and the task's options; ``task``: the task it is
    for when the file names none (``saved``: a run's own config.yaml, see ``make_config``)."""
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
    if isinstance(data.get("task", ""), str):  # a task that is no name is the caller's to refuse, by its file
        make_config({**data, "task": data.get("task") or task}, origin=str(path), saved=saved)  # checked now
    return data


def to_dict(cfg: TrainConfig) -> dict[str, Any]:
    """The config as one flat mapping: the common fields, then the task's own options (config.yaml, checkpoints)."""
    flat = dataclasses.asdict(cfg)
    flat.update(flat.pop("options"))
    return flat


def save_yaml(cfg: TrainConfig, path: Path) -> None:
    from cnnkit.files import atomic_write_bytes

    atomic_write_bytes(path, yaml.safe_dump(to_dict(cfg), sort_keys=False).encode())

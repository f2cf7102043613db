"""The task registry: a task is one :class:`TaskSpec`, registered once, from which the engine's task
object, the torch-free output side, the exported-graph runner, the prediction options and the task's
training options are all found.

Torch-free: the spec names its parts as ``"module:Class"`` and they load on first use, so that the
CLI's help and an .onnx prediction never import torch.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from cnnkit.config import NoTrainOptions, declare_task_options
from cnnkit.errors import CnnkitError, did_you_mean
from cnnkit.options import NoOptions

if TYPE_CHECKING:
    from cnnkit.data.check import TaskLayouts
    from cnnkit.data.layout import Layout
    from cnnkit.engine.task import Task
    from cnnkit.predictor import Runner, View


@dataclass(frozen=True)
class TaskSpec:
    """Everything cnnkit knows of a task, in one place."""

    name: str  # the CLI's word: `cnnkit train <name>`
    summary: str  # one line for `cnnkit train --help`
    task: str  # "module:Class" of the torch side (data, model, loss, metrics, predict); built as Class(spec)
    view: str  # "module:Class" of the torch-free output side (records, pictures, files); built as Class(spec)
    options: type = NoOptions  # the prediction options dataclass (cnnkit.options)
    runner: str = ""  # "module:Class" running an exported graph without torch, built as Class(spec); "" = none
    # "module:NAME" of the task's data layouts (a sequence of cnnkit.data.layout.Layout), loaded on first use;
    # the order is the order training tries them, the last reading whatever the others do not detect
    layouts: str = ""
    # the training options dataclass (fields from cnnkit.options.option): its flags, recipe keys and API keywords,
    # beside the common TrainConfig fields; the task reads them as cfg.options.<name>
    train_options: type = NoTrainOptions
    # the task's defaults of common TrainConfig fields: "model" is taken when --model is not given, "monitor"
    # picks best.pt; the others replace TrainConfig's default for this task (shown by --help)
    defaults: Mapping[str, Any] = field(default_factory=dict)
    args: Mapping[str, Any] = field(default_factory=dict)  # the task's own constants (detect: masks=False)
    # the kind of registered model it trains (cnnkit.models.registry: "classifier", "segmenter", ...); "" = its name
    model_kind: str = ""
    # what to run after training, printed at the end of `cnnkit train`: {weights}, {data}, {model} and {model_task}
    # (the task that trains that model) are filled in
    next_steps: tuple[str, ...] = ("cnnkit val --weights {weights} --data {data}",
                                   "cnnkit predict --weights {weights} IMAGES...",
                                   "cnnkit export --weights {weights} --verify --data {data}")
    demo: DemoSpec | None = None  # the task's part of `cnnkit demo`; None: not in the demo


@dataclass(frozen=True)
class DemoSpec:
    """A task's part of ``cnnkit demo``: trained on synthetic shapes, then shown new scenes."""

    recipe: Mapping[str, Any]  # the training values (common fields and the task's options), sized for ~1 minute
    about: str  # what its synthetic data holds, one phrase
    # how cnnkit.cli.demo shows the model: "labels" (a class per image), "pixels" (a class per pixel), "objects"
    # (objects found), "embedding" (fine-tuning from the pretrained encoder against from scratch), "identities"
    # (identities never trained on, enrolled and searched), "clicks" (a simulated user's clicks on new scenes)
    shows: str
    options: Mapping[str, Any] = field(default_factory=dict)  # prediction options for the new scenes
    size: int = 64  # side of the new scenes (px)
    default: bool = True  # run by a plain `cnnkit demo`; False: only with --task


_SPECS: dict[str, TaskSpec] = {}
_BUILT: dict[tuple[str, str], Any] = {}


def register_task(spec: TaskSpec) -> TaskSpec:
    """Add a task; a second task of the same name is an error."""
    if spec.name in _SPECS:
        raise ValueError(f"task '{spec.name}' is already registered")
    _SPECS[spec.name] = spec
    declare_task_options(spec.name, spec.train_options)  # the config reads the task's options by its name
    return spec


def unregister_task(name: str) -> None:
    """Remove a task (tests that register their own)."""
    _SPECS.pop(name, None)
    declare_task_options(name, None)
    for key in [k for k in _BUILT if k[0] == name]:
        del _BUILT[key]


def task_names() -> list[str]:
    return list(_SPECS)


def model_kind(name: str) -> str:
    """The kind of registered model task ``name`` trains (``cnnkit.models.registry``)."""
    spec = get_spec(name)
    return spec.model_kind or spec.name


def task_of_kind(kind: str) -> str:
    """The task that trains models of ``kind`` (the first registered), else the kind itself."""
    return next((name for name in _SPECS if model_kind(name) == kind), kind)


def get_spec(name: str) -> TaskSpec:
    if name not in _SPECS:
        raise CnnkitError(f"unknown task '{name}'.{did_you_mean(name, _SPECS)} Tasks: {', '.join(_SPECS)}")
    return _SPECS[name]


def _part(name: str, part: str) -> Any:
    """The class a spec names as ``"module:Class"`` for ``part`` (task, view or runner), imported now."""
    target = getattr(get_spec(name), part)
    if not target:
        raise CnnkitError(f"the {name} task has no {part}")
    module, _, cls = target.partition(":")
    return getattr(importlib.import_module(module), cls)


def _build(name: str, part: str) -> Any:
    if (name, part) not in _BUILT:
        _BUILT[(name, part)] = _part(name, part)(get_spec(name))
    return _BUILT[(name, part)]


def get_task(name: str) -> Task:
    """The torch side of a task, for the engine (imports torch)."""
    return _build(name, "task")


def get_view(name: str) -> View:
    """The torch-free output side of a task: records, console lines, CSV rows, pictures, files."""
    return _build(name, "view")


def get_layouts(name: str) -> tuple[Layout, ...]:
    """The data layouts a task reads, most specific first (``TaskSpec.layouts``); () when it declares none."""
    target = get_spec(name).layouts
    if not target:
        return ()
    if (name, "layouts") not in _BUILT:
        module, _, attr = target.partition(":")
        _BUILT[(name, "layouts")] = tuple(getattr(importlib.import_module(module), attr))
    return _BUILT[(name, "layouts")]


def check_tasks() -> list[TaskLayouts]:
    """Every registered task as ``cnnkit data check`` takes it: its layouts, suggested model, config fields."""
    from cnnkit.data.check import TaskLayouts

    return [TaskLayouts(name, get_layouts(name), str(spec.defaults.get("model", "")),
                        tuple(f.name for f in dataclasses.fields(spec.train_options)), spec.args.get("masks"))
            for name, spec in _SPECS.items()]


def guess_task(source: str) -> tuple[str, str]:
    """(task, why): the task whose layout detects ``source`` most specifically (``cnnkit.data.layout``)."""
    from cnnkit.data.check import guess

    first = guess(source, check_tasks())[0]
    return first.task, first.why


def get_runner_class(name: str) -> type[Runner]:
    """The class that runs a task's exported graph (onnxruntime or TorchScript)."""
    return _part(name, "runner")

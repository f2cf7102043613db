"""The flags that cnnkit builds from the task registry: `cnnkit train <task>`'s (the common TrainConfig fields
and the task's own training options) and the prediction options of `cnnkit predict` and `cnnkit val`."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from typing import Any

from cnnkit.config import config_fields, default_of
from cnnkit.options import OptionInfo, option_infos
from cnnkit.tasks import TaskSpec, get_spec, task_names


def add_config_flags(parser: argparse.ArgumentParser, spec: TaskSpec) -> None:
    """One flag per common TrainConfig field and per option of ``spec``'s task, defaulting to 'not given' so that
    YAML and defaults stay below it; help shows the task's real default. Other tasks' options are parsed but
    hidden, so that giving one is refused by name (``make_config``)."""
    for f in config_fields():
        if f.name in ("task", "model_args"):
            continue
        default = default_of(f.name)
        help_text = f"{f.metadata['help']} [default: {spec.defaults.get(f.name, default)!r}]"
        _add_flag(parser, f.name, default, help_text, f.metadata.get("choices"))
    own = option_infos(spec.train_options)
    for info in own:
        _add_flag(parser, info.name, info.default, _help_of(info), info.choices)
    taken = {f.name for f in config_fields()} | {i.name for i in own}
    for name in task_names():
        for info in option_infos(get_spec(name).train_options):
            if info.name not in taken:
                taken.add(info.name)
                _add_flag(parser, info.name, info.default if info.kind is bool else "", argparse.SUPPRESS, None)


def _add_flag(parser: argparse.ArgumentParser, name: str, default: Any, help_text: str,
              choices: Sequence[Any] | None) -> None:
    flag = "--" + name.replace("_", "-")
    if isinstance(default, bool):
        parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=argparse.SUPPRESS, help=help_text)
    elif isinstance(default, list):
        parser.add_argument(flag, type=float, nargs="+", default=argparse.SUPPRESS, help=help_text)
    else:
        # '' (the task's default) is what leaving the flag out gives: not offered as a choice ('{,ce}')
        offered = [c for c in choices if c != ""] if choices else None
        shown = "{" + ",".join(str(c) for c in offered) + "}" if offered else None
        parser.add_argument(flag, type=type(default), default=argparse.SUPPRESS, help=help_text, choices=offered,
                            metavar=shown)


def _help_of(info: OptionInfo) -> str:
    """An option's help line: its text, unit and range, and its default."""
    about = ", ".join(x for x in (info.unit, info.bounds()) if x)
    return f"{info.help}{f' ({about})' if about else ''} [default: {info.default!r}]"


def add_option_flags(parser: argparse.ArgumentParser, evaluate: bool = False) -> None:
    """The prediction options of every registered task as flags (``evaluate``: those that apply to
    ``cnnkit val``). Left unset, each task takes its own default; a flag its task does not take is an
    error when the model is known. Where tasks share a flag but differ in help, default or range, its help
    gives each task's own."""
    seen: dict[str, list[tuple[str, OptionInfo]]] = {}
    for name in task_names():
        for info in option_infos(get_spec(name).options):
            if evaluate and not info.evaluate:
                continue
            seen.setdefault(info.name, []).append((name, info))
    for owners in seen.values():
        info = owners[0][1]
        help_text = "; ".join(f"{', '.join(tasks)}: {text}" for text, tasks in _help_by_task(owners).items())
        if info.kind is bool:
            parser.add_argument(info.flag, action="store_true", default=argparse.SUPPRESS, help=help_text)
        else:
            parser.add_argument(info.flag, type=_option_type(owners), default=argparse.SUPPRESS, help=help_text,
                                choices=info.choices)


def _help_by_task(owners: list[tuple[str, OptionInfo]]) -> dict[str, list[str]]:
    """The help of one prediction flag, task by task, tasks with the same help together (in registry order)."""
    texts: dict[str, list[str]] = {}
    for task, info in owners:
        default = "" if info.kind is bool else f" [default: {info.default!r}]"
        unit = f" ({info.unit})" if info.unit else ""
        texts.setdefault(f"{info.help}{unit}{default}", []).append(task)
    return texts


def _option_type(owners: list[tuple[str, OptionInfo]]) -> Callable[[str], Any]:
    """A value that some task sharing the flag takes (the model's task checks it against its own range)."""
    def parse(text: str) -> Any:
        errors = []
        for _, info in owners:
            try:
                return info.parse(text)
            except ValueError as e:
                errors.append(str(e))
        raise argparse.ArgumentTypeError(errors[0])
    parse.__name__ = owners[0][1].kind.__name__
    return parse

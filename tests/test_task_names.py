"""A task owns all its knowledge: below tasks/ (layers 0-4: base, runtime, domain, engine, export) no module
names a task. What differs by task is asked of the task's objects (its view's fields, its card's extra, its
spec's model kind), never decided by comparing its name."""

import re
from pathlib import Path

import cnnkit
from cnnkit.models import get_entry, list_models
from cnnkit.tasks import get_spec, get_task, model_kind, task_names, task_of_kind
from tests.test_layers import LAYERS

ROOT = Path(cnnkit.__file__).parent
NAME = re.compile(r"""["'](classify|segment|instance|detect|pretrain)["']""")
BELOW_TASKS = set().union(*LAYERS[:5])


def below_tasks() -> list[Path]:
    return [p for p in sorted(ROOT.rglob("*.py"))
            if (p.relative_to(ROOT).parts[0] if len(p.relative_to(ROOT).parts) > 1 else p.stem) in BELOW_TASKS]


def test_no_task_name_literal_below_tasks():
    assert len(below_tasks()) > 50  # the layers were found
    found = [f"{p.relative_to(ROOT)}:{n}: {line.strip()}" for p in below_tasks()
             for n, line in enumerate(p.read_text().splitlines(), 1) if NAME.search(line)]
    assert found == []


def test_every_registered_model_is_trained_by_a_task():
    """Models are registered by kind (what their network outputs); each built-in kind is some task's."""
    for name in task_names():
        get_task(name)  # a task's torch side may register models of its own
    built_in = [get_entry(name) for name in list_models() if get_entry(name).builder.__module__.startswith("cnnkit.")]
    kinds = {entry.kind for entry in built_in}
    assert {task_of_kind(kind) for kind in kinds} <= set(task_names())
    for name in task_names():
        if not get_spec(name).args.get("any_model"):
            assert list_models(model_kind(name)), f"{name} has no registered model"

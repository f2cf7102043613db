"""Tasks: each a package that registers one :class:`TaskSpec` (see ``registry.py`` and ARCHITECTURE.md).

Torch-free: a task's torch side loads when ``get_task`` first asks for it.
"""

from __future__ import annotations

from cnnkit.tasks import classify, click, instance, pretrain, recognize, segment
from cnnkit.tasks.registry import (
    TaskSpec,
    get_layouts,
    get_runner_class,
    get_spec,
    get_task,
    get_view,
    model_kind,
    register_task,
    task_names,
    task_of_kind,
    unregister_task,
)

register_task(classify.SPEC)
register_task(segment.SPEC)
register_task(instance.SPEC)
register_task(instance.DETECT_SPEC)
register_task(pretrain.SPEC)
register_task(recognize.SPEC)
register_task(click.SPEC)

__all__ = ["TaskSpec", "get_layouts", "get_runner_class", "get_spec", "get_task", "get_view", "model_kind",
           "register_task", "task_names", "task_of_kind", "unregister_task"]

"""The task map: task name -> task object. Later tasks register here.

The task modules import torch, so they load on first use: the torch-free output side of each task
(``cnnkit.tasks.views``) can then be imported alone.
"""

from __future__ import annotations

from typing import Any

from cnnkit.errors import CnnkitError, did_you_mean

_TASKS: dict[str, Any] = {}


def _tasks() -> dict[str, Any]:
    if not _TASKS:
        from cnnkit.tasks.classify import ClassifyTask
        from cnnkit.tasks.instance import InstanceTask
        from cnnkit.tasks.segment import SegmentTask

        _TASKS.update(classify=ClassifyTask(), segment=SegmentTask(), instance=InstanceTask(),
                      detect=InstanceTask("detect", masks=False))
    return _TASKS


def get_task(name: str) -> Any:
    tasks = _tasks()
    if name not in tasks:
        raise CnnkitError(f"unknown task '{name}'.{did_you_mean(name, tasks)} Tasks: {', '.join(tasks)}")
    return tasks[name]


def __getattr__(name: str) -> Any:
    if name == "TASKS":
        return _tasks()
    if name in ("Task", "TaskData"):
        from cnnkit.tasks import base

        return getattr(base, name)
    raise AttributeError(f"module 'cnnkit.tasks' has no attribute '{name}'")


__all__ = ["TASKS", "Task", "TaskData", "get_task"]

"""The task map: task name -> task object. Later tasks register here."""

from __future__ import annotations

from cnnkit.errors import CnnkitError, did_you_mean
from cnnkit.tasks.base import Task, TaskData
from cnnkit.tasks.classify import ClassifyTask
from cnnkit.tasks.instance import InstanceTask
from cnnkit.tasks.segment import SegmentTask

TASKS: dict[str, Task] = {"classify": ClassifyTask(), "segment": SegmentTask(), "instance": InstanceTask(),
                          "detect": InstanceTask("detect", masks=False)}


def get_task(name: str) -> Task:
    if name not in TASKS:
        raise CnnkitError(f"unknown task '{name}'.{did_you_mean(name, TASKS)} Tasks: {', '.join(TASKS)}")
    return TASKS[name]


__all__ = ["TASKS", "Task", "TaskData", "get_task"]

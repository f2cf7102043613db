"""A toy fifth task, defined in the test folder alone: the mean brightness of a grey image (regression).

It exists to prove that a task is one folder and one registration line: ``test_toy_task.py`` registers
SPEC and trains, validates, predicts and exports it through the CLI.
"""

from __future__ import annotations

from dataclasses import dataclass

from cnnkit.options import option
from cnnkit.tasks import TaskSpec


@dataclass(frozen=True)
class BrightnessOptions:
    decimals: int = option(3, "decimals of the reported brightness", unit="digits", low=0, high=6)


@dataclass(frozen=True)
class BrightnessTrainOptions:
    noise: float = option(8.0, "pixel noise of the synthetic grey images (standard deviation)", unit="grey levels",
                          low=0.0, high=64.0)


SPEC = TaskSpec(name="brightness", summary="mean brightness of an image (a toy regression task)",
                task="tests.tasks.toy.task:BrightnessTask", view="tests.tasks.toy.view:BrightnessView",
                runner="tests.tasks.toy.view:BrightnessRunner", options=BrightnessOptions,
                layouts="tests.tasks.toy.layouts:LAYOUTS", train_options=BrightnessTrainOptions)

"""An epoch never silently drops most of the data, and each task trains with a batch that fits a laptop."""

import pytest

from cnnkit.api import with_task_defaults
from cnnkit.engine.trainer import drops_last


@pytest.mark.parametrize("images,batch,dropped", [
    (115, 64, False),  # 51 images were dropped every epoch
    (130, 64, True),   # 2 left: a quarter of a batch or less
    (9, 2, True),      # 1 left: batch norm cannot train on one image
    (64, 64, False),
    (10, 64, False),
])
def test_last_batch_dropped_only_when_small(images, batch, dropped):
    assert drops_last(images, batch) is dropped


def test_detectors_default_to_small_batches():
    for task in ("instance", "detect"):
        assert with_task_defaults({"task": task})["batch"] == 4
    assert with_task_defaults({"task": "instance", "batch": 16})["batch"] == 16

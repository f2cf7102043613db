"""One tiny classification run per test session: its folder holds the report training wrote when it ended."""

from __future__ import annotations

from pathlib import Path

import pytest

import cnnkit
from tests.conftest import write_image_folder


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished run folder of `cnnkit train classify` (1 epoch of a tiny network on 32 px shapes)."""
    root = tmp_path_factory.mktemp("report")
    data = write_image_folder(root / "shapes", {"train": (48, 0), "val": (16, 1)}, 32)
    result = cnnkit.train(task="classify", data=str(data), model="basic_cnn", model_args={"preset": "tiny"},
                          imgsz=24, epochs=1, batch=16, verbose=False, project=str(root / "runs"))
    return result.run_dir

"""A small trained checkpoint for the corpus's predict, val, export and checkpoint cases (trained once)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from cnnkit.cli.main import main
from tests.robustness.corpus import classify


@pytest.fixture(scope="session")
def trained(tmp_path_factory) -> dict[str, Path]:
    """{'ckpt': best.pt of basic_cnn on two classes, 'nan_ckpt': the same with a NaN weight, 'nometa': with an
    empty meta, 'data': its data}."""
    root = tmp_path_factory.mktemp("trained")
    classify(root / "data")
    assert main(["train", "classify", "--data", str(root / "data"), "--model", "basic_cnn", "--imgsz", "24",
                 "--epochs", "1", "--batch", "8", "--no-verbose", "--project", str(root / "runs"),
                 "--name", "t"]) == 0
    ckpt = root / "runs" / "classify" / "t" / "best.pt"
    state = torch.load(ckpt, weights_only=True)
    first = next(iter(state["model"]))
    state["model"][first] = torch.full_like(state["model"][first], float("nan"))
    torch.save(state, root / "nan.pt")
    torch.save({**state, "meta": {}}, root / "nometa.pt")
    return {"ckpt": ckpt, "nan_ckpt": root / "nan.pt", "nometa": root / "nometa.pt", "data": root / "data"}


@pytest.fixture(scope="session")
def busy_port():
    """A port a listening socket holds for the session."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield s.getsockname()[1]

"""Device selection, below every package that runs a model (the engine, the API, the server)."""

from __future__ import annotations

import torch

from cnnkit.config import check_value
from cnnkit.errors import CnnkitError


def select_device(name: str) -> torch.device:
    """'auto' (CUDA when present), 'cpu', 'cuda', 'cuda:N', 'N' (Ultralytics' and PyTorch users' GPU index)
    or 'mps'; a device this machine lacks is refused in one line."""
    check_value("device", name)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.isdigit():
        name = f"cuda:{name}"
    if name == "mps":
        if not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
            raise CnnkitError("--device mps: Apple's Metal (MPS) is not available on this machine; use --device cpu")
        return torch.device("mps")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise CnnkitError(f"--device {name}: no CUDA device is available here; use --device cpu")
        index = int(name.split(":")[1]) if ":" in name else 0
        if index >= torch.cuda.device_count():
            raise CnnkitError(f"--device {name}: this machine has {torch.cuda.device_count()} CUDA device(s), "
                              f"numbered from 0")
    return torch.device(name)

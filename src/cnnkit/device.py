"""Device selection, below every package that runs a model (the engine, the API, the server)."""

from __future__ import annotations

import os
from pathlib import Path

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


def available_memory(device: torch.device | str = "cpu") -> int:
    """Bytes a new allocation can take now: free memory of a CUDA device, else the RAM the kernel says is
    available (MemAvailable, within a container's cgroup limit); 0 when this system does not say."""
    device = torch.device(device)
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    if device.type != "cpu":
        return 0  # MPS shares RAM but reports no free figure of its own
    return min((n for n in (_meminfo_available(), _cgroup_headroom()) if n > 0), default=0)


def _meminfo_available() -> int:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:  # other Unixes: free pages (less than available, which counts reclaimable caches)
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 0


def _cgroup_headroom() -> int:
    """A container's memory limit less its use (cgroup v2), where one is set."""
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        used = int(Path("/sys/fs/cgroup/memory.current").read_text().strip())
    except (OSError, ValueError):
        return 0
    return max(1, int(limit) - used) if limit.isdigit() else 0

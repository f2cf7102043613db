"""Atomic writes and safe checkpoint loading (``weights_only=True``)."""

from __future__ import annotations

import io
import random
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch

from cnnkit.errors import CnnkitError
from cnnkit.files import atomic_write_bytes
from cnnkit.meta import REQUIRED as META_KEYS
from cnnkit.meta import ModelMeta


def non_finite(weights: dict[str, Any]) -> list[str]:
    """Names of the floating-point tensors in ``weights`` that hold NaN or infinity."""
    return [k for k, v in weights.items()
            if isinstance(v, torch.Tensor) and v.is_floating_point() and not bool(torch.isfinite(v).all())]


def save_checkpoint(state: dict[str, Any], path: str | Path) -> None:
    """Write ``state`` atomically; weights that are not finite are never written (they would predict NaN).
    A :class:`ModelMeta` is stored as its plain dict, which ``weights_only`` loading reads."""
    if isinstance(state.get("meta"), ModelMeta):
        state = {**state, "meta": state["meta"].to_dict()}
    bad = non_finite(state["model"])
    if bad:
        raise CnnkitError(f"{path}: not written: the weights became NaN or infinite ({len(bad)} tensors, e.g. "
                          f"{bad[0]}) at epoch {state.get('epoch')}; lower --lr, or use --grad-clip 1, or drop --amp")
    buf = io.BytesIO()
    torch.save(state, buf)
    atomic_write_bytes(path, buf.getvalue())


def _reason(e: Exception) -> str:
    """Why torch.load failed, in words rather than the exception's class name."""
    if "Unsupported global" in str(e):
        return "it holds pickled objects, which cnnkit never unpickles: weights_only=True"
    return "not a PyTorch file"


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load a cnnkit checkpoint on the CPU with ``weights_only=True`` (no code is unpickled); its ``meta``
    comes back as a :class:`ModelMeta` (of any schema so far)."""
    path = Path(path)
    if not path.is_file():
        raise CnnkitError(f"{path}: checkpoint not found; pass the best.pt or last.pt of a run to --weights")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unpickling failure means the file is unusable
        raise CnnkitError(f"{path}: not a readable checkpoint ({_reason(e)}); pass the best.pt or last.pt of a cnnkit "
                          "run") from None
    if not isinstance(ckpt, dict) or "model" not in ckpt or "task" not in ckpt:
        raise CnnkitError(f"{path}: not a cnnkit checkpoint (no task/model entries); pass a .pt written by cnnkit")
    meta = ckpt.get("meta")
    lacking = [k for k in META_KEYS if not isinstance(meta, dict) or k not in meta]
    if lacking or not isinstance(ckpt["model"], dict):
        raise CnnkitError(f"{path}: not a complete cnnkit checkpoint (its meta lacks {', '.join(lacking) or 'nothing'}"
                          f"{'' if isinstance(ckpt['model'], dict) else '; no weights'}); pass a .pt written by cnnkit")
    bad = non_finite(ckpt["model"])
    if bad:
        raise CnnkitError(f"{path}: holds NaN or infinite weights ({len(bad)} tensors, e.g. {bad[0]}); it cannot "
                          "predict. Use an earlier checkpoint, or retrain with a lower --lr")
    ckpt["meta"] = ModelMeta.from_dict(cast("dict[str, Any]", meta), origin=str(path))  # a dict: nothing lacks
    return ckpt


def rng_state() -> dict[str, Any]:
    """Every RNG that training draws from, in weights_only-safe types."""
    np_state = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "python": random.getstate(),
        "numpy": torch.from_numpy(np_state[1].astype(np.int64)),
        "numpy_pos": int(np_state[2]),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    version, internal, gauss_next = state["python"]
    random.setstate((version, tuple(internal), gauss_next))
    np.random.set_state(("MT19937", state["numpy"].numpy().astype(np.uint32), state["numpy_pos"], 0, 0.0))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])

"""The Python API, mirroring the CLI: ``train``, ``load`` and ``Model.predict``."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from cnnkit.config import TrainConfig, load_yaml, make_config
from cnnkit.data.images import as_pil, iter_sources  # noqa: F401 - iter_sources is part of the API
from cnnkit.engine.checkpoint import load_checkpoint
from cnnkit.engine.trainer import TrainResult, fit, select_device
from cnnkit.errors import CnnkitError
from cnnkit.models.wrapper import ImageModel, build_image_model
from cnnkit.tasks import get_task

ImageLike = str | Path | Image.Image | np.ndarray | torch.Tensor


def train(config: str | Path | None = None, **overrides: Any) -> TrainResult:
    """Train from a recipe file and/or keyword overrides of :class:`TrainConfig` fields.

    >>> cnnkit.train(task="classify", data="shapes", model="fastnet_small", epochs=3)
    """
    values = load_yaml(config) if config else {}
    values.update(overrides)
    if values.get("resume") and "epochs" not in values:
        values["epochs"] = 0  # a resumed run keeps its own number of epochs
    return train_with(make_config(values))


def train_with(cfg: TrainConfig, on_epoch_end: Callable[[int, dict], None] | None = None) -> TrainResult:
    """Train a resolved config: its task found by name, its model checked before any data is read."""
    from cnnkit.data.images import set_max_pixels
    from cnnkit.models import accepts, get_entry, list_models

    task, entry = get_task(cfg.task), get_entry(cfg.model)
    if entry.task != task.name:
        some = ", ".join(list_models(task.name)[:4])
        raise CnnkitError(f"--model {cfg.model}: a {entry.task} model, not {task.name}; pick a {task.name} model "
                          f"such as {some} (`cnnkit models --task {task.name}` lists them)")
    if cfg.pretrained and not accepts(cfg.model, "pretrained"):
        raise CnnkitError(f"--pretrained: {cfg.model} takes no pretrained weights (it is trained from scratch); drop "
                          "--pretrained, or pick a torchvision backbone such as resnet18")
    if cfg.pretrained not in ("", "torchvision") and not Path(cfg.pretrained).is_file():
        raise CnnkitError(f"--pretrained {cfg.pretrained}: file not found; give a weights file, 'torchvision', "
                          "or drop --pretrained")
    set_max_pixels(cfg.max_pixels)
    return fit(cfg, task, on_epoch_end)


class Model:
    """A trained model with its task's predictor: ``model.predict(images)``."""

    def __init__(self, module: ImageModel, checkpoint: dict[str, Any], device: torch.device):
        self.module, self.checkpoint, self.device = module, checkpoint, device
        self.meta = module.meta
        self.task = get_task(checkpoint["task"])

    @property
    def classes(self) -> list[str]:
        return list(self.meta["classes"])

    @staticmethod
    def to_pil(image: ImageLike) -> Image.Image:
        """Any image-like as a PIL image: a path, PIL, an ``(H, W[, C])`` uint8 array or ``(C, H, W)`` tensor."""
        if isinstance(image, torch.Tensor):
            arr = image.detach().cpu()
            arr = arr.permute(1, 2, 0) if arr.ndim == 3 and arr.shape[0] in (1, 3, 4) else arr
            return Image.fromarray(arr.squeeze(-1).numpy() if arr.ndim == 3 and arr.shape[-1] == 1 else arr.numpy())
        return as_pil(image)

    def options(self) -> list[str]:
        """Keyword options ``predict`` takes for this model's task."""
        return task_options(self.task)

    def predict(self, images: ImageLike | Sequence[ImageLike], batch: int = 32, **options: Any) -> list[dict]:
        """Predict one image or a list (paths, PIL images, HxWxC arrays, CxHxW tensors).

        ``options`` go to the task's predictor (classify: topk, tta; segment: tta, mode, tile, overlap, probs;
        instance and detect: score_thresh, nms_thresh, max_det, tile, overlap).
        """
        accepted = task_options(self.task)
        unknown = sorted(set(options) - set(accepted))
        if unknown:
            raise CnnkitError(f"predict: options {unknown} do not apply to {self.task.name}; "
                              f"it takes {', '.join(accepted)}")
        single = not isinstance(images, (list, tuple))
        items = [images] if single else list(images)
        out: list[dict] = []
        for start in range(0, len(items), batch):
            out += self.task.predict(self.module, [self.to_pil(im) for im in items[start:start + batch]], **options)
        return out

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return self.module(images.to(self.device))


def task_options(task: Any) -> list[str]:
    """Keyword options the task's ``predict`` accepts."""
    import inspect

    return [p for p in inspect.signature(task.predict).parameters if p not in ("model", "images")]


def load(weights: str | Path, device: str = "auto", task: str | None = None) -> Model:
    """Load a cnnkit checkpoint (``best.pt``/``last.pt``) for prediction, safely (weights_only)."""
    ckpt = load_checkpoint(weights)
    if task is not None and ckpt["task"] != task:
        raise CnnkitError(f"{weights}: a {ckpt['task']} checkpoint, not {task}; use weights trained for {task}")
    dev = select_device(device)
    module = build_image_model(ckpt["meta"])
    try:
        module.load_state_dict(ckpt["model"])
    except RuntimeError as e:
        raise CnnkitError(f"{weights}: weights do not fit {ckpt['meta'].get('model')} ({str(e).splitlines()[0]})"
                          ) from None
    return Model(module.to(dev).eval(), ckpt, dev)


__all__ = ["Model", "TrainConfig", "iter_sources", "load", "train"]

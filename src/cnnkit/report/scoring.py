"""Each validation item's loss, by the task's own loss function: what ranks the images a model got most wrong.

Items go through the model in batches of one size (in evaluation mode a batch gives each image the outputs it
would have alone) and the loss is taken on each image's slice; a detector, whose losses exist only in training
mode, runs one image at a time in training mode with its normalisation and dropout layers held in evaluation."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import torch

    from cnnkit.engine.task import TaskData
    from cnnkit.loading import Model

CHUNK = 32  # items per forward pass in evaluation mode
SMALL_SIDE = 256  # images up to this side run on one thread: a second one only waits (and spins) at this size


@contextmanager
def training_mode_with_fixed_norms(module: torch.nn.Module) -> Iterator[None]:
    """The module in training mode (a detector computes its losses only there) with every normalisation and
    dropout layer held in evaluation mode, so that scoring changes no running statistics and draws no dropout;
    every module's own mode restored afterwards."""
    from torch import nn

    modes = {m: m.training for m in module.modules()}
    module.train()
    for m in module.modules():
        if hasattr(m, "running_mean") or isinstance(m, (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.AlphaDropout)):
            m.eval()
    try:
        yield
    finally:
        for m, mode in modes.items():
            m.train(mode)


@contextmanager
def threads_for(model: Model) -> Iterator[None]:
    """One CPU thread for small images (restored afterwards): on a busy machine two threads on a 32-pixel image
    took ten times as long as one."""
    import torch

    before = torch.get_num_threads()
    small = model.device.type == "cpu" and model.meta.imgsz <= SMALL_SIDE
    if small:
        torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def nth(obj: Any, k: int) -> Any:
    """Item ``k`` of a batch as a batch of one: tensors sliced, dicts and lists item by item."""
    import torch

    if isinstance(obj, torch.Tensor):
        return obj[k:k + 1]
    if isinstance(obj, dict):
        return {key: nth(value, k) for key, value in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)([obj[k]])
    return obj


def loss_value(loss_fn: Any, outputs: Any, targets: Any) -> float | None:
    """The loss of one image's outputs; None when the task's loss gives none (or not a finite one)."""
    import torch
    import torch.nn.functional as F

    if isinstance(targets, dict) and "mask" in targets and isinstance(outputs, torch.Tensor):
        # full-size masks of shrunk images (as `cnnkit val` scores them): the logits brought to the mask's size
        outputs = F.interpolate(outputs.float(), size=targets["mask"].shape[-2:], mode="bilinear",
                                align_corners=False)
        targets = targets["mask"]
    loss = loss_fn(outputs, targets)
    if loss is None:
        return None
    value = float(loss)
    return value if np.isfinite(value) else None


def batch_of(model: Model, data: TaskData, items: list[tuple[Any, Any]]) -> tuple[Any, Any]:
    from torch.utils.data import default_collate

    from cnnkit.engine.loop import to_device

    images, targets = (data.collate_fn or default_collate)(items)
    return to_device(images, model.device), to_device(targets, model.device)


def shapes(item: tuple[Any, Any]) -> tuple[Any, Any] | None:
    """The shapes of an item's image and target (a mask's, for a dict holding one); None when unknown."""
    image, target = item
    target = target["mask"] if isinstance(target, dict) and "mask" in target else target
    shape = getattr(image, "shape", None)
    return None if shape is None else (tuple(shape), tuple(getattr(target, "shape", ())))


def chunks(data: TaskData, picked: list[int]) -> Iterator[tuple[list[int], list[tuple[Any, Any]]]]:
    """The picked items in runs of one shape (no padding to change an output), up to CHUNK at a time."""
    run: list[int] = []
    items: list[tuple[Any, Any]] = []
    for i in picked:
        item = data.val[i]
        shape = shapes(item)
        if run and (len(run) == CHUNK or shape is None or shape != shapes(items[0])):
            yield run, items
            run, items = [], []
        run.append(i)
        items.append(item)
    if run:
        yield run, items


def eval_losses(model: Model, data: TaskData, loss_fn: Any, picked: list[int]) -> list[tuple[int, float | None]]:
    out = []
    for indices, items in chunks(data, picked):
        images, targets = batch_of(model, data, items)
        outputs = model.module(images)
        out += [(i, loss_value(loss_fn, nth(outputs, k), nth(targets, k))) for k, i in enumerate(indices)]
    return out


def training_losses(model: Model, data: TaskData, loss_fn: Any, picked: list[int]) -> list[tuple[int, float | None]]:
    assert data.train_forward is not None  # the task computes its losses in training mode
    out = []
    with training_mode_with_fixed_norms(model.module):
        for i in picked:
            images, targets = batch_of(model, data, [data.val[i]])
            out.append((i, loss_value(loss_fn, data.train_forward(model.module, images, targets), targets)))
    return out


def item_losses(model: Model, data: TaskData, loss_fn: Any, limit: int) -> list[tuple[int, float]]:
    """(index in the validation split, loss) of up to ``limit`` items spread evenly over the split, highest
    loss first; items the loss gives no value for are left out. The model and the random state are as before."""
    import torch

    total = len(data.val)  # type: ignore[arg-type]  # every task's validation set has a length
    picked = sorted({int(i) for i in np.linspace(0, total - 1, min(limit, total)).round()}) if total and limit else []
    devices = [model.device.index or 0] if model.device.type == "cuda" else []
    # a detector samples proposals in training mode: a fixed seed makes the ranking repeatable
    with torch.random.fork_rng(devices=devices), torch.no_grad(), threads_for(model):
        torch.manual_seed(0)
        scored = (training_losses if data.train_forward is not None else eval_losses)(model, data, loss_fn, picked)
    return sorted(((i, v) for i, v in scored if v is not None), key=lambda pair: -pair[1])

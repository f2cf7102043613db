"""Clickers: the clicks on one object (and the last mask) -> the object's mask. Either a trained click model
(:class:`ModelClicker`, ``cnnkit train click``) or, without one, the seeded method of ``cnnkit.grow``
(:class:`SeedClicker`), which learns a small network on the image itself from the clicks."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
from PIL import Image

from cnnkit.errors import CnnkitError
from cnnkit.metrics.clicks import CLICK_RADIUS, Click, click_maps

if TYPE_CHECKING:
    from cnnkit.loading import Model

CLICK_TASK = "click"  # the task whose checkpoints ModelClicker runs


class Clicker(Protocol):
    """``clicker(image, clicks, prev) -> mask``: image ``(H, W, 3)`` uint8, clicks in its pixels, prev the
    mask it returned last (bool ``(H, W)``) or None; returns bool ``(H, W)``, True on the object."""

    name: str

    def __call__(self, image: np.ndarray, clicks: Sequence[Click], prev: np.ndarray | None) -> np.ndarray: ...


def check_threshold(threshold: float) -> float:
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0.0 < threshold < 1.0:
        raise CnnkitError(f"threshold={threshold!r}: give a probability strictly between 0 and 1 (default 0.5)")
    return float(threshold)


class ModelClicker:
    """A click model's answer: ``model.task.predict_clicks(model.module, image, clicks, prev)`` (the
    object's probability at the image's size) above ``threshold``. No clicks: an empty mask. Thread-safe as
    the model's prediction is."""

    name = "click-model"

    def __init__(self, model: Model, threshold: float = 0.5):
        predict_clicks = getattr(model.task, "predict_clicks", None)  # the click task's; no other task has it
        if not callable(predict_clicks):
            raise CnnkitError(f"a {model.meta.task} model has no click prediction; train a click model with "
                              "`cnnkit train click --data D` and pass its best.pt")
        self.model, self.threshold, self.predict_clicks = model, check_threshold(threshold), predict_clicks

    def probability(self, image: np.ndarray, clicks: Sequence[Click], prev: np.ndarray | None) -> np.ndarray:
        """``(H, W)`` float32 in 0..1: the object's probability (zeros without clicks)."""
        if not clicks:
            return np.zeros(image.shape[:2], np.float32)
        prob = self.predict_clicks(self.model.module, Image.fromarray(image), list(clicks), prev)
        return np.asarray(prob, dtype=np.float32)

    def __call__(self, image: np.ndarray, clicks: Sequence[Click], prev: np.ndarray | None) -> np.ndarray:
        return self.probability(image, clicks, prev) > self.threshold


class SeedClicker:
    """The seeded method of ``cnnkit.grow`` (no trained model): disks of ``radius`` px around the positive clicks
    seed the object, those around the negative clicks and a band of ``border`` px along the image's edge the
    background (clicked disks win over the band). ``connected``: keep only the object's regions that hold a
    positive click (the clicked object, not everything that looks like it). Each call learns from all the
    clicks afresh; a negative click only takes away: after one, the answer is cut to the previous mask (a
    network relearned from a few background seeds may otherwise flood the image). No positive click: an
    empty mask.

    grow_options: fields of :class:`cnnkit.grow.method.GrowOptions`; the defaults here (60 steps at 160 px on
    the long side) answer in about 1-2 s for a 360x480 image on 2 CPU cores. Deterministic (``seed``).
    """

    name = "seeded"
    DEFAULTS: dict[str, Any] = {"iterations": 60, "side": 160, "passes": 0}

    def __init__(self, radius: float = CLICK_RADIUS, border: int = 4, connected: bool = True, **grow_options: Any):
        from cnnkit.grow.method import GrowOptions  # torch: only when a clicker is made

        known = {f.name for f in fields(GrowOptions)}
        unknown = sorted(set(grow_options) - known)
        if unknown:
            raise CnnkitError(f"SeedClicker: unknown option(s) {', '.join(unknown)}; use fields of GrowOptions "
                              f"({', '.join(sorted(known))})")
        try:
            self.options = replace(GrowOptions(), **{**self.DEFAULTS, **grow_options})
        except ValueError as e:
            raise CnnkitError(f"SeedClicker: {e}") from None
        if radius < 0 or border < 0:
            raise CnnkitError(f"SeedClicker: radius={radius}, border={border}: give sizes of at least 0 px")
        self.radius, self.border, self.connected = float(radius), int(border), connected

    def seeds(self, shape: tuple[int, int], clicks: Sequence[Click]) -> np.ndarray:
        """``(H, W)`` int32 seed map as ``grow_images`` reads it: 1 = object, 2 = background, 0 = unseeded."""
        disks = click_maps(clicks, shape, self.radius) > 0
        seeds = np.zeros(shape, np.int32)
        if self.border:  # also after negative clicks: a few of them alone seed too little background
            b = self.border
            seeds[:b], seeds[-b:], seeds[:, :b], seeds[:, -b:] = 2, 2, 2, 2
        seeds[disks[1]] = 2
        seeds[disks[0]] = 1  # a positive disk overlapping a negative one: the later intent is unknown; object wins
        for c in clicks:  # the clicked pixel itself, even with radius 0
            seeds[c.y, c.x] = 1 if c.positive else 2
        return seeds

    def __call__(self, image: np.ndarray, clicks: Sequence[Click], prev: np.ndarray | None) -> np.ndarray:
        from cnnkit.grow.method import grow_images

        shape = (int(image.shape[0]), int(image.shape[1]))
        if not any(c.positive for c in clicks):
            return np.zeros(shape, bool)
        labels, _ = grow_images([image], [self.seeds(shape, clicks)], 2, self.options)[0]
        mask = labels == 0
        if not clicks[-1].positive and prev is not None and np.shape(prev) == shape:
            mask &= np.asarray(prev, bool)
        return keep_clicked(mask, clicks) if self.connected else mask


def keep_clicked(mask: np.ndarray, clicks: Sequence[Click]) -> np.ndarray:
    """The connected regions (8-connected) of ``mask`` that hold a positive click."""
    from scipy.ndimage import label

    regions, _ = label(mask, structure=np.ones((3, 3), bool))
    ids = {int(regions[c.y, c.x]) for c in clicks if c.positive} - {0}
    return np.isin(regions, sorted(ids)) if ids else np.zeros_like(mask)


def load_clicker(weights: str | Path | Model | None, threshold: float = 0.5, device: str = "auto") -> Clicker:
    """The clicker for ``weights``: None -> :class:`SeedClicker`; a click model's checkpoint (best.pt, a run
    folder) or a loaded :class:`cnnkit.loading.Model` -> :class:`ModelClicker`. CnnkitError naming the file
    for a model of another task or an exported file (click models run from their checkpoint)."""
    if weights is None:
        return SeedClicker()
    check_threshold(threshold)
    if isinstance(weights, (str, Path)):
        from cnnkit.loading import load

        model: Any = load(weights, device)
        name = str(weights)
    else:
        model, name = weights, "the model"
    task = model.meta.task
    if task != CLICK_TASK:
        raise CnnkitError(f"{name}: a {task} model, not a click model; train one with `cnnkit train click --data D` "
                          "and pass its best.pt (or leave out the weights for the seeded method)")
    if getattr(model, "runtime", "") != "pytorch":
        raise CnnkitError(f"{name}: an exported click model; clicks run on the checkpoint: pass the run's best.pt")
    return ModelClicker(model, threshold)

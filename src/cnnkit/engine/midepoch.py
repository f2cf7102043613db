"""Checkpoints inside an epoch: a long epoch (50,000 JPEGs on a busy machine) is not lost to a crash
or a scheduler's time limit. ``last.pt`` is rewritten every ``--save-period`` minutes with the steps
done, and ``--resume`` runs the rest of that epoch: the same batches in the same order (the sampler's
order depends on seed and epoch only), from the same random state. With ``--workers 0`` the resumed
run repeats the uninterrupted one exactly; with workers, each worker's augmentation stream restarts.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch.utils.data import DataLoader, Sampler


class SkipSampler(Sampler):
    """``sampler``'s indices after the first ``skip``."""

    def __init__(self, sampler: Sampler, skip: int):
        self.sampler, self.skip = sampler, skip

    def __iter__(self) -> Iterator[int]:
        return itertools.islice(iter(self.sampler), self.skip, None)

    def __len__(self) -> int:
        return max(0, len(self.sampler) - self.skip)


def rest_of_epoch(loader: DataLoader, steps: int) -> DataLoader:
    """The batches of ``loader``'s current epoch after its first ``steps`` (set the sampler's epoch first)."""
    return DataLoader(loader.dataset, batch_size=loader.batch_size, sampler=SkipSampler(loader.sampler,
                                                                                        steps * loader.batch_size),
                      num_workers=loader.num_workers, collate_fn=loader.collate_fn, pin_memory=loader.pin_memory,
                      drop_last=loader.drop_last, generator=loader.generator)


def done_steps(resume: dict[str, Any] | None) -> tuple[int, float, int]:
    """(steps, loss sum, images) of a resumed epoch's first part; zeros when it starts afresh."""
    partial = (resume or {}).get("partial") or {}
    return int(partial.get("steps", 0)), float(partial.get("loss_sum", 0.0)), int(partial.get("seen", 0))


class MidEpochSaver:
    """After each step: ``save(steps, loss_sum, images)`` once ``every_s`` seconds passed since the last."""

    def __init__(self, every_s: float, save: Callable[[int, float, int], None]):
        self.every_s, self.save, self.last = every_s, save, time.monotonic()

    def __call__(self, steps: int, loss_sum: torch.Tensor, seen: int) -> None:
        if self.every_s > 0 and time.monotonic() - self.last >= self.every_s:
            self.save(steps, float(loss_sum), seen)
            self.last = time.monotonic()

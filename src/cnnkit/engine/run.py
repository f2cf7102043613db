"""The state of one training run, named: where it runs (``Run``), what it updates (``Parts``) and what one epoch
uses (``Training``), so that ``fit``'s steps pass these instead of positional tuples."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader

from cnnkit.distributed import DistInfo
from cnnkit.engine.checkpoint import rng_state, set_rng_state
from cnnkit.engine.logger import RunLogger
from cnnkit.engine.task import Metrics


@dataclass
class Run:
    """Where one training run happens: this process's place among the DistributedDataParallel ranks, its
    device, the run folder and (once the folder is set up) the run's log."""

    info: DistInfo
    device: torch.device
    folder: Path
    log: RunLogger | None = None

    @property
    def is_main(self) -> bool:
        """Rank 0 (or no DistributedDataParallel): the process that writes files and reports."""
        return self.info.is_main

    @property
    def logger(self) -> RunLogger:
        assert self.log is not None, "the run's log is opened in _fit_in before the epochs"
        return self.log


@dataclass
class Training:
    """What the epochs run: the model as trained (DistributedDataParallel and compiled where asked), the
    loaders, the task's loss and metrics."""

    model: torch.nn.Module
    train_loader: DataLoader
    val_loader: DataLoader
    loss_fn: Any  # (outputs, targets) -> loss; the task's build_loss
    metrics: Metrics


@dataclass
class Parts:
    """What one training run updates, and what last.pt saves of it."""

    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler
    ema: torch.optim.swa_utils.AveragedModel | None
    best: float = -float("inf")
    best_metrics: dict = field(default_factory=dict)
    bad_epochs: int = 0
    best_report: str = ""  # the task's per-class table of the best epoch

    @property
    def eval_model(self) -> torch.nn.Module:
        return self.ema.module if self.ema is not None else self.model

    def training_state(self, elapsed_s: float) -> dict[str, Any]:
        return {"optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
                "scaler": self.scaler.state_dict(), "ema": None if self.ema is None else self.ema.state_dict(),
                "rng": rng_state(), "bad_epochs": self.bad_epochs, "best_metrics": self.best_metrics,
                "elapsed_s": elapsed_s}

    def restore(self, ckpt: dict[str, Any]) -> None:
        self.model.load_state_dict(ckpt["model"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.scheduler.load_state_dict(ckpt["scheduler"])
        self.scaler.load_state_dict(ckpt["scaler"])
        if self.ema is not None:
            self.ema.load_state_dict(ckpt["ema"])
        self.best, self.bad_epochs = ckpt["best_fitness"], ckpt["bad_epochs"]
        self.best_metrics = ckpt.get("best_metrics", {})
        set_rng_state(ckpt["rng"])

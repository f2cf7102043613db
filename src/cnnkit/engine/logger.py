"""What a run writes as it goes: metrics.csv, TensorBoard events, results.png, and the console."""

from __future__ import annotations

import csv
import math
import time
from pathlib import Path
from typing import Any

from cnnkit.files import atomic_write_csv
from cnnkit.log import LOGGER
from cnnkit.metrics.plots import plot_results
from cnnkit.progress import bars_shown, format_duration, is_quiet, progress_bar

PROGRESS_EVERY_S = 30.0  # s: with no terminal for a bar (a log file, a job scheduler, --quiet), a line this often


class RunLogger:
    """Only rank 0 makes one (``enabled``); the others log nothing."""

    def __init__(self, run_dir: Path, enabled: bool = True, verbose: bool = True, start_epoch: int = 0):
        self.run_dir, self.enabled, self.verbose = run_dir, enabled, verbose
        self.csv_path = run_dir / "metrics.csv"
        self.tty = bars_shown()  # a terminal or a notebook, and not --quiet
        self._bar: Any = None
        self._run_start: tuple[float, int] | None = None  # (time, steps done) when this process began training
        self._tb = None
        if enabled:
            self._trim_csv(start_epoch)
            try:
                from torch.utils.tensorboard import SummaryWriter

                self._tb = SummaryWriter(str(run_dir), purge_step=start_epoch + 1)
            except ImportError:  # tensorboard is optional (pip install 'cnnkit[tensorboard]'): metrics.csv has it all
                self._tb = None

    def _trim_csv(self, start_epoch: int) -> None:
        """On resume, drop rows of epochs that will run again."""
        if not self.csv_path.exists():
            return
        with self.csv_path.open() as f:
            rows = [r for r in csv.DictReader(f) if int(r["epoch"]) <= start_epoch]
        self._write_rows(rows)

    def _write_rows(self, rows: list[dict]) -> None:
        """Rewrite metrics.csv atomically: an interrupted run never leaves half a file."""
        atomic_write_csv(self.csv_path, rows)

    def info(self, message: str) -> None:
        if self.enabled and self.verbose:
            print(message, flush=True)

    def warning(self, message: str) -> None:
        """Shown on rank 0 even with --quiet or verbose off: a warning is never a progress line."""
        if self.enabled:
            LOGGER.warning(message)

    def epoch_start(self, epoch: int, epochs: int, steps: int, first_step: int = 0) -> None:
        self._epoch, self._epochs, self._steps, self._t0 = epoch, epochs, steps, time.perf_counter()
        self._last_line = self._t0
        if self._run_start is None:
            self._run_start = (self._t0, epoch * steps + first_step)
        if self.enabled and self.verbose and self.tty:
            self._bar = progress_bar(total=steps, desc=f"epoch {epoch + 1}/{epochs}", unit="step")
            self._bar.update(first_step)

    def run_eta(self, step: int) -> str:
        """The whole run's remaining time at ``step`` of this epoch, from this process's pace so far
        (validation included once an epoch has ended)."""
        if self._run_start is None or self._epochs <= 0:
            return "?"
        start, done0 = self._run_start
        done = self._epoch * self._steps + step - done0
        left = self._epochs * self._steps - (self._epoch * self._steps + step)
        return format_duration((time.perf_counter() - start) / done * left) if done > 0 else "?"

    def progress(self, stats: dict[str, float]) -> None:
        step = int(stats["step"])
        if self._bar is not None:
            self._bar.update(step - self._bar.n)
            self._bar.set_postfix(loss=f"{stats['loss']:.4f}", img_s=f"{stats['img/s']:.3g}",
                                  run_eta=self.run_eta(step), refresh=False)
        elif (self.enabled and self.verbose and not is_quiet()
              and time.perf_counter() - self._last_line >= PROGRESS_EVERY_S):
            # a long epoch in a log file showed no sign of life until it ended, and looked hung
            self._last_line = time.perf_counter()
            self.info(f"epoch {self._epoch + 1}/{self._epochs} step {step}/{self._steps} "
                      f"loss {stats['loss']:.4f} {stats['img/s']:.3g} img/s, run ends in about {self.run_eta(step)}")

    def validating(self, loader: Any) -> Any:
        """``loader`` with a bar while the epoch's validation runs (it took minutes on large instance images)."""
        if not (self.enabled and self.verbose and self.tty):
            return loader
        return progress_bar(loader, total=len(loader), desc=f"val {self._epoch + 1}/{self._epochs}", unit="batch")

    def epoch_end(self, row: dict[str, float], monitor: str) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        if not self.enabled:
            return
        rows = []
        if self.csv_path.exists():
            with self.csv_path.open() as f:
                rows = list(csv.DictReader(f))
        # a NaN or infinite figure is an empty cell: 'nan' in a CSV is read as a number by some tools
        rows.append({k: ((f"{v:.6g}" if math.isfinite(v) else "") if isinstance(v, float) else v)
                     for k, v in row.items()})
        self._write_rows(rows)
        if self._tb is not None:
            for k, v in row.items():
                if k != "epoch":
                    self._tb.add_scalar(k, v, row["epoch"])
            self._tb.flush()
        plot_results(self.csv_path, self.run_dir / "results.png")
        keys = dict.fromkeys(("train_loss", "val_loss", monitor))  # in order, each once
        shown = " ".join(f"{k}={row[k]:.4f}" for k in keys if k in row)
        left = "" if row["epoch"] >= self._epochs else f", about {self.run_eta(self._steps)} to go"
        self.info(f"epoch {row['epoch']}/{self._epochs} {shown} train {row['train_img_s']:.3g} img/s "
                  f"({format_duration(row['time_s'])} elapsed{left})")

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()

"""What a run writes as it goes: metrics.csv, TensorBoard events, results.png, and the console."""

from __future__ import annotations

import csv
import sys
import time
from pathlib import Path

from cnnkit.files import atomic_write_csv
from cnnkit.metrics.plots import plot_results

PROGRESS_EVERY_S = 30.0  # s: with no terminal for a bar (a log file, a notebook, a job scheduler), a line this often


class RunLogger:
    """Only rank 0 makes one (``enabled``); the others log nothing."""

    def __init__(self, run_dir: Path, enabled: bool = True, verbose: bool = True, start_epoch: int = 0):
        self.run_dir, self.enabled, self.verbose = run_dir, enabled, verbose
        self.csv_path = run_dir / "metrics.csv"
        self.tty = sys.stderr.isatty()
        self._bar = None
        self._tb = None
        if enabled:
            self._trim_csv(start_epoch)
            try:
                from torch.utils.tensorboard import SummaryWriter

                self._tb = SummaryWriter(str(run_dir), purge_step=start_epoch + 1)
            except ImportError:  # tensorboard is a dependency, but a run should not die without it
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

    def epoch_start(self, epoch: int, epochs: int, steps: int) -> None:
        self._epoch, self._epochs, self._steps, self._t0 = epoch, epochs, steps, time.perf_counter()
        self._last_line = self._t0
        if self.enabled and self.verbose and self.tty:
            from tqdm import tqdm

            self._bar = tqdm(total=steps, desc=f"epoch {epoch + 1}/{epochs}", leave=False, file=sys.stderr,
                             dynamic_ncols=True)

    def progress(self, stats: dict[str, float]) -> None:
        if self._bar is not None:
            self._bar.n = int(stats["step"])
            self._bar.set_postfix(loss=f"{stats['loss']:.4f}", img_s=f"{stats['img/s']:.3g}")
        elif self.enabled and self.verbose and time.perf_counter() - self._last_line >= PROGRESS_EVERY_S:
            # a long epoch in a log file showed no sign of life until it ended, and looked hung
            self._last_line = time.perf_counter()
            self.info(f"epoch {self._epoch + 1}/{self._epochs} step {int(stats['step'])}/{self._steps} "
                      f"loss {stats['loss']:.4f} {stats['img/s']:.3g} img/s")

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
        rows.append({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})
        self._write_rows(rows)
        if self._tb is not None:
            for k, v in row.items():
                if k != "epoch":
                    self._tb.add_scalar(k, v, row["epoch"])
            self._tb.flush()
        plot_results(self.csv_path, self.run_dir / "results.png")
        keys = dict.fromkeys(("train_loss", "val_loss", monitor))  # in order, each once
        shown = " ".join(f"{k}={row[k]:.4f}" for k in keys if k in row)
        self.info(f"epoch {row['epoch']}/{self._epochs} {shown} train {row['train_img_s']:.3g} img/s "
                  f"({row['time_s']:.0f}s elapsed)")

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()

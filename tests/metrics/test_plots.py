"""Reports: per_class.csv numbers as written, results.png panels."""

import csv

import numpy as np
import torch

from cnnkit.metrics import plots


def test_per_class_csv_has_no_float32_noise(tmp_path):
    per_class = [{"class": "a", "iou": float(np.float32(0.26)), "pixels": 10}]
    plots.write_reports(tmp_path, per_class, torch.eye(1, dtype=torch.long), ["a"])
    text = (tmp_path / "per_class.csv").read_text()
    assert "0.26," in text and "0.2599999" not in text


def test_results_plot_puts_both_losses_in_one_panel(tmp_path, monkeypatch):
    path = tmp_path / "metrics.csv"
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["epoch", "train_loss", "val_loss", "top1", "lr", "time_s"])
        writer.writerow([1, 1.2, 1.1, 0.5, 0.1, 3])
    titles: list[str] = []
    real = plots.plt.subplots

    def spy(*args, **kwargs):
        fig, axes = real(*args, **kwargs)
        monkeypatch.setattr(fig, "savefig", lambda *a, **k: titles.extend(
            (ax.get_title(), list(ax.get_xticks())) for ax in axes.flat if ax.axison))
        return fig, axes

    monkeypatch.setattr(plots.plt, "subplots", spy)
    plots.plot_results(path, tmp_path / "results.png")
    assert [t for t, _ in titles] == ["loss", "top1"]
    assert all(ticks and all(float(t).is_integer() for t in ticks) for _, ticks in titles)  # not 0.96 ... 1.04

"""The learning-rate schedule: warm-up, decay and the warm-up's cap."""

import pytest
import torch

from cnnkit.config import make_config
from cnnkit.engine.optim import MAX_WARMUP_SHARE, build_scheduler


def lrs(steps_per_epoch: int, **cfg) -> list[float]:
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    config = make_config({"task": "classify", "lr": 1.0, **cfg})
    schedule = build_scheduler(optimizer, config, steps_per_epoch)
    out = []
    for _ in range(config.epochs * steps_per_epoch):
        out.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        schedule.step()
    return out


@pytest.mark.parametrize("shape", ["onecycle", "cosine"])
def test_a_one_epoch_run_decays_after_a_capped_warm_up(shape):
    """Regression: with --epochs 1 the default one-epoch warm-up was the whole run; the lr never decayed."""
    got = lrs(100, epochs=1, warmup_epochs=1.0, schedule=shape)
    peak = got.index(max(got))
    assert peak == int(100 * MAX_WARMUP_SHARE) - 1 and max(got) == pytest.approx(1.0)  # full lr at its last step
    assert got[-1] < 0.05


def test_warm_up_as_asked_when_it_is_a_small_share():
    got = lrs(10, epochs=10, warmup_epochs=1.0, schedule="onecycle")
    assert got[0] == pytest.approx(0.1) and got[9] == pytest.approx(1.0)  # 10 steps of warm-up
    assert got[-1] < 0.02

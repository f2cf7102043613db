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


@pytest.mark.parametrize("optimizer", ["sgd", "adamw"])
def test_fixed_parameters_do_not_move_until_their_steps_are_done(optimizer):
    """--freeze-epochs: the encoder's groups sit at lr 0 for ``fixed_steps`` steps, then follow the schedule."""
    from cnnkit.engine.optim import build_optimizer

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.ReLU(), torch.nn.BatchNorm1d(4), torch.nn.Linear(4, 2))
    encoder = list(net[:3].parameters())
    config = make_config({"task": "classify", "optimizer": optimizer, "lr": 0.1, "weight_decay": 0.1, "epochs": 1,
                          "warmup_epochs": 0})
    opt = build_optimizer(net, config, encoder, fixed_steps=2)
    schedule = build_scheduler(opt, config, 5)
    start = [p.detach().clone() for p in net.parameters()]
    for step in range(3):
        net(torch.randn(8, 4)).square().mean().backward()
        opt.step()
        opt.zero_grad()
        schedule.step()
        moved = [not torch.equal(p, p0) for p, p0 in zip(net.parameters(), start)]
        assert all(moved[4:]), "the head learns from the first step"
        assert not any(moved[:4]) if step < 2 else all(moved[:4])
    assert len(opt.param_groups) == 4 and sum(len(g["params"]) for g in opt.param_groups) == 6

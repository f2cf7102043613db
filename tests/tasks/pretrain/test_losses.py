"""The pretraining losses against their papers' formulas, computed by hand with loops."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from cnnkit.tasks.pretrain.losses import masked_mse, nt_xent, vicreg


def hand_nt_xent(z: np.ndarray, t: float) -> float:
    """SimCLR eq. 1: l(i, j) = -log exp(sim(i, j)/t) / sum_{k != i} exp(sim(i, k)/t), mean over the 2N views."""
    views = np.concatenate([z[:, 0], z[:, 1]])
    n = len(z)
    total = 0.0
    for i in range(2 * n):
        j = (i + n) % (2 * n)

        def sim(a: int, b: int) -> float:
            return float(views[a] @ views[b] / (np.linalg.norm(views[a]) * np.linalg.norm(views[b])))

        denominator = sum(math.exp(sim(i, k) / t) for k in range(2 * n) if k != i)
        total += -math.log(math.exp(sim(i, j) / t) / denominator)
    return total / (2 * n)


def hand_vicreg(z: np.ndarray, lam: float = 25, mu: float = 25, nu: float = 1, eps: float = 1e-4) -> float:
    a, b = z[:, 0].astype(np.float64), z[:, 1].astype(np.float64)
    n, d = a.shape
    invariance = sum((a[i, k] - b[i, k]) ** 2 for i in range(n) for k in range(d)) / (n * d)

    def variance(x: np.ndarray) -> float:
        return sum(max(0.0, 1 - math.sqrt(np.var(x[:, k], ddof=1) + eps)) for k in range(d)) / d

    def covariance(x: np.ndarray) -> float:
        c = np.cov(x, rowvar=False)
        return sum(c[k, m] ** 2 for k in range(d) for m in range(d) if k != m) / d

    return lam * invariance + mu * (variance(a) + variance(b)) / 2 + nu * (covariance(a) + covariance(b))


@pytest.mark.parametrize("t", [0.1, 0.5])
def test_nt_xent_matches_the_formula(t):
    z = np.random.default_rng(0).normal(size=(4, 2, 3)).astype(np.float32)
    assert float(nt_xent(torch.from_numpy(z), t)) == pytest.approx(hand_nt_xent(z, t), rel=1e-4)


def test_nt_xent_is_low_when_views_agree_and_images_differ():
    z = torch.eye(4).repeat_interleave(2, 0).view(4, 2, 4)  # each image's two views equal, images orthogonal
    assert float(nt_xent(z, 0.1)) < 1e-3


def test_vicreg_matches_the_formula():
    z = np.random.default_rng(1).normal(scale=0.5, size=(6, 2, 4)).astype(np.float32)
    assert float(vicreg(torch.from_numpy(z))) == pytest.approx(hand_vicreg(z), rel=1e-4)


def test_vicreg_penalises_collapse():
    collapsed = torch.ones(8, 2, 4)
    # invariance and covariance are 0; each dimension's std is 0, so the variance term is its maximum, 25 * 1
    assert float(vicreg(collapsed)) == pytest.approx(25 * (1 - math.sqrt(1e-4)), rel=1e-5)


def test_masked_mse_counts_only_blanked_pixels():
    target = torch.zeros(1, 2, 2, 2)
    recon = torch.tensor([[[[1.0, 5.0], [0.0, 0.0]], [[3.0, 7.0], [0.0, 0.0]]]])
    mask = torch.tensor([[[[1.0, 0.0], [0.0, 0.0]]]])  # only the top-left pixel was blanked
    assert float(masked_mse(recon, target, mask)) == pytest.approx((1 + 9) / 2)

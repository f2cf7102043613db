"""The pretraining losses, written from their papers' formulas (tests check them by hand computation)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def nt_xent(z: torch.Tensor, temperature: float = 0.2) -> torch.Tensor:
    """SimCLR's NT-Xent (Chen et al. 2020, eq. 1) over projections ``z`` ``(N, 2, D)``.

    Each of the 2N projections is classified among the 2N - 1 others by cosine similarity / temperature;
    the right answer is the other view of its image. Mean over all 2N.
    """
    n = z.shape[0]
    z = F.normalize(torch.cat([z[:, 0], z[:, 1]]).float(), dim=1)
    sim = z @ z.T / temperature
    sim.fill_diagonal_(-float("inf"))
    targets = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(z.device)
    return F.cross_entropy(sim, targets)


def vicreg(z: torch.Tensor, invariance: float = 25.0, variance: float = 25.0, covariance: float = 1.0,
           eps: float = 1e-4) -> torch.Tensor:
    """VICReg (Bardes et al. 2022, eqs. 1-6, as their code) over projections ``z`` ``(N, 2, D)``.

    invariance: mean squared distance of the two views; variance: hinge max(0, 1 - std) per dimension,
    averaged, per branch (halved); covariance: squared off-diagonal covariances / D, per branch.
    """
    a, b = z[:, 0].float(), z[:, 1].float()
    n, d = a.shape
    inv = F.mse_loss(a, b)
    a, b = a - a.mean(0), b - b.mean(0)
    correction = 1 if n > 1 else 0  # a last batch of one image: no spread to measure, and no NaN
    var = (F.relu(1 - torch.sqrt(a.var(0, correction=correction) + eps)).mean()
           + F.relu(1 - torch.sqrt(b.var(0, correction=correction) + eps)).mean()) / 2

    def off_diagonal_sq(x: torch.Tensor) -> torch.Tensor:
        cov = x.T @ x / max(n - 1, 1)
        return (cov.pow(2).sum() - cov.diagonal().pow(2).sum()) / d

    return invariance * inv + variance * var + covariance * (off_diagonal_sq(a) + off_diagonal_sq(b))


def masked_mse(recon: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean squared error over the blanked pixels only (``mask`` 1 there), all channels."""
    se = (recon.float() - target.float()).pow(2) * mask
    return se.sum() / (mask.sum() * recon.shape[1]).clamp_min(1.0)


class PretrainLoss:
    """The engine's loss for pretraining: picks the method's loss from the network's outputs."""

    def __init__(self, method: str, temperature: float = 0.2):
        self.method, self.temperature = method, temperature

    def __call__(self, outputs: dict[str, torch.Tensor], targets: torch.Tensor) -> torch.Tensor:
        if self.method == "mae":
            return masked_mse(outputs["recon"], outputs["target"], outputs["mask"])
        if self.method == "vicreg":
            return vicreg(outputs["z"])
        return nt_xent(outputs["z"], self.temperature)

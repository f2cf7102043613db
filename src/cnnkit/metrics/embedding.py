"""Label-free and few-label measures of an embedding: its spread (collapse) and k-NN accuracy.

``spread``: the per-dimension standard deviation of the L2-normalised embeddings, times sqrt(D).
Embeddings spread evenly over the sphere give about 1; a collapsed embedding (every image mapped to
the same point) gives 0 (SimSiam, Chen & He 2021, section 4.1, uses the same measure, on the
projector's output: the encoder's pooled ReLU features all lie in one orthant, where a healthy
embedding also spreads little).

``knn_predict``: weighted k-nearest-neighbour vote on cosine similarity, each neighbour weighted by
exp(similarity / 0.07) (Wu et al. 2018; DINO's k-NN evaluation).
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn.functional as F

from cnnkit.log import LOGGER

COLLAPSE_SPREAD = 0.05  # below this the embedding has (nearly) collapsed
KNN_TEMPERATURE = 0.07


def spread(embeddings: torch.Tensor) -> float:
    """``(N, D)`` -> std per dimension of the normalised embeddings, averaged, times sqrt(D); 0 = collapsed."""
    if len(embeddings) < 2:
        return float("nan")
    z = F.normalize(embeddings.float(), dim=1)
    return float(z.std(0).mean() * math.sqrt(z.shape[1]))


def knn_predict(bank: torch.Tensor, bank_labels: torch.Tensor, queries: torch.Tensor, k: int = 20,
                num_classes: int = 0, exclude_self: bool = False, chunk: int = 1024) -> torch.Tensor:
    """Class scores ``(Q, num_classes)`` of ``queries`` ``(Q, D)`` from the ``k`` most similar of ``bank``
    ``(B, D)`` with labels ``(B,)``. ``exclude_self``: queries are the bank (leave-one-out)."""
    num_classes = num_classes or int(bank_labels.max()) + 1
    bank = F.normalize(bank.float(), dim=1)
    queries = F.normalize(queries.float(), dim=1)
    k = max(1, min(k, len(bank) - (1 if exclude_self else 0)))
    out = []
    for start in range(0, len(queries), chunk):
        sim = queries[start:start + chunk] @ bank.T
        if exclude_self:
            rows = torch.arange(len(sim))
            sim[rows, rows + start] = -float("inf")
        top, index = sim.topk(k, dim=1)
        weights = (top / KNN_TEMPERATURE).exp()
        scores = torch.zeros(len(sim), num_classes)
        scores.scatter_add_(1, bank_labels[index], weights)
        out.append(scores)
    return torch.cat(out) if out else torch.zeros(0, num_classes)


def knn_accuracy(embeddings: torch.Tensor, labels: torch.Tensor, k: int = 20) -> float:
    """Leave-one-out k-NN accuracy of labelled embeddings (each image classified by the others)."""
    scores = knn_predict(embeddings, labels, embeddings, k, exclude_self=True)
    return float((scores.argmax(1) == labels).float().mean())


class EmbeddingMetrics:
    """The engine's metrics for pretraining: spread always; k-NN top-1 when the images have labels."""

    def __init__(self, k: int = 20, method: str = ""):
        self.k = k
        # what to change on collapse: a joint-embedding method can move to VICReg, whose variance term resists it
        self.advice = "Lower --lr, raise --batch" + (", or try --method vicreg" if method != "vicreg" else
                                                    ", or give more images")
        self.reset()

    def reset(self) -> None:
        self.embeddings: list[torch.Tensor] = []
        self.projections: list[torch.Tensor] = []  # the joint-embedding methods' projector output
        self.labels: list[torch.Tensor] = []

    def update(self, outputs: dict[str, torch.Tensor], targets: torch.Tensor) -> None:
        self.embeddings.append(outputs["embedding"].detach().float().cpu())
        if "projection" in outputs:
            self.projections.append(outputs["projection"].detach().float().cpu())
        self.labels.append(targets.detach().cpu())

    def compute(self) -> dict[str, float]:
        emb = torch.cat(self.embeddings) if self.embeddings else torch.zeros(0, 1)
        labels = torch.cat(self.labels) if self.labels else torch.zeros(0, dtype=torch.long)
        results = {"spread": spread(torch.cat(self.projections) if self.projections else emb)}
        # a masked autoencoder does not collapse (it rebuilds pixels); its spread, of ReLU features, is only shown
        if self.projections and results["spread"] < COLLAPSE_SPREAD:
            LOGGER.warning("warning: the embedding has collapsed (spread %.3f; about 1 is healthy): every image maps "
                           "to nearly the same point. %s", results["spread"], self.advice)
        if len(labels) > 1 and bool((labels >= 0).all()) and len(labels.unique()) > 1:
            results["knn_top1"] = knn_accuracy(emb, labels, self.k)
        return results

    def save(self, folder: Path) -> list[Path]:
        return []

    def table(self) -> str:
        return ""

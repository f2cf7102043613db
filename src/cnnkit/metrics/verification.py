"""Open-set recognition metrics: embeddings ``(N, D)`` of images of identities never seen in training.

The distance everywhere is the cosine distance d = 1 - cos(a, b), in [0, 2] (embeddings are L2-normalised
here again, whatever the caller did); two images are judged the same identity iff d <= threshold.

- Verification (every pair of images, same identity or not): the ROC of the pairs, its area, the true accept
  rate (TAR) at a false accept rate (FAR) and the equal error rate (EER), as the face verification
  benchmarks report them (IJB-C, Maze et al. 2018, TAR at FAR 1e-2 .. 1e-6; EER as ISO/IEC 19795-1 defines
  it). Computed with scikit-learn's ``roc_curve``.
- Retrieval (every image a query against all the others): the cumulative match characteristic at rank k
  (``rank1``, ``rank5``) and the mean average precision (``map``), as in person re-identification
  (Zheng et al. 2015, Market-1501). Computed with torchmetrics' ``RetrievalHitRate`` and ``RetrievalMAP``.
- Enrolment (a gallery of a few images per identity, every other image a query): closed-set identification
  rank-1, as a deployment that enrols each person with a few photos sees it (MegaFace's identification
  protocol, Kemelmacher-Shlizerman et al. 2016, with a gallery per identity instead of one image).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from cnnkit.errors import CnnkitError
from cnnkit.log import LOGGER

# distances held at once while pairing or ranking: 4M float32 (16 MB) and their masks, whatever N is
_BLOCK_ELEMENTS = 1 << 22
_TOO_FEW = ("open-set validation needs at least two identities with two images each (found {same:,} same-identity "
            "and {diff:,} different-identity pairs): put more images of more identities in the validation split")
_ROC_ROWS = 200  # roc.csv is thinned to about this many points (a plot's worth; the curve has a row per pair)
COLLAPSED = 0.01  # median cosine distance between different identities below which embeddings collapsed


def far_tag(far: float) -> str:
    """The FAR as a percentage without its point, for metric names: 0.01 -> "1", 0.001 -> "01", 0.0001 -> "001"."""
    if not 0.0 < far < 1.0:
        raise CnnkitError(f"false accept rate {far!r}: give a fraction between 0 and 1, e.g. 0.001 for 0.1%")
    return f"{far * 100:.10f}".rstrip("0").rstrip(".").replace(".", "")


def _normalised(embeddings: Any, labels: Any) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(embeddings, dtype=np.float32)
    y = np.asarray(labels).reshape(-1)
    if x.ndim != 2 or len(x) != len(y):
        raise ValueError(f"embeddings {x.shape} and labels {y.shape}: expected (N, D) and (N,)")
    if not np.isfinite(x).all():
        raise CnnkitError("the embeddings hold NaN or infinite values (training diverged): lower --lr, or resume "
                          "from an earlier checkpoint")
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12), y


def _cosine_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    # float32 products (half the time of float64 at N = 20,000); rounding can step just outside [0, 2]
    return np.clip(1.0 - a @ b.T, 0.0, 2.0)


def _sample(population: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """``size`` distinct integers below ``population``, sorted, uniformly: numpy's ``choice`` without replacement
    shuffles the whole population once the sample passes a fiftieth of it (1.6 GB for 20,000 images)."""
    if 4 * size >= population:
        return np.sort(rng.choice(population, size=size, replace=False))
    # draws with replacement, repeated for what duplicates took: the set is uniform by symmetry
    picked = np.zeros(0, dtype=np.int64)
    while len(picked) < size:
        # sort and drop repeats: np.unique took 7 s on 5M integers (numpy 2.4), a sort 0.1 s
        picked = np.sort(np.concatenate([picked, rng.integers(0, population, size=size - len(picked))]))
        picked = picked[np.concatenate([[True], picked[1:] != picked[:-1]])]
    return picked


def pair_distances(embeddings: np.ndarray, labels: np.ndarray, max_pairs: int = 5_000_000,
                   seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Cosine distances of the image pairs i < j: ``(N, D)`` embeddings and ``(N,)`` labels -> distances
    ``(P,)`` float64 in [0, 2] and ``(P,)`` bool, True for a same-label pair; in row-major (i, j) order.

    All N(N-1)/2 pairs when that is at most ``max_pairs``. Above it every same-label pair is kept and the
    different-label pairs are a uniform sample without replacement (``numpy.random.default_rng(seed)``, so the
    same pairs every epoch) filling the rest, but at least a tenth of ``max_pairs`` of them (or all there
    are), so the FAR stays measurable when same-label pairs crowd them out (then P exceeds ``max_pairs``).
    Computed in blocks of rows: memory is O(``max_pairs`` + a block), not O(N^2)."""
    x, y = _normalised(embeddings, labels)
    n = len(x)
    _, counts = np.unique(y, return_counts=True)
    n_same = int((counts * (counts - 1) // 2).sum())
    n_diff = n * (n - 1) // 2 - n_same
    chosen = None  # sorted positions among the different-label pairs (row-major) that are kept; None: all
    if n_same + n_diff > max_pairs:
        keep = min(n_diff, max(max_pairs - n_same, max_pairs // 10))
        chosen = _sample(n_diff, keep, np.random.default_rng(seed))
    distances, same = [np.zeros(0)], [np.zeros(0, dtype=bool)]
    diff_before = 0  # different-label pairs in the blocks done
    block = max(1, _BLOCK_ELEMENTS // max(n, 1))
    for start in range(0, n, block):
        rows = np.arange(start, min(start + block, n))
        # columns from the block's first row on: the pairs j > i, without the half of the products below
        upper = np.arange(start, n)[None, :] > rows[:, None]
        is_same = y[rows][:, None] == y[None, start:]
        keep_mask = upper & is_same
        if chosen is None:
            keep_mask |= upper & ~is_same
        else:
            diff_at = np.flatnonzero(upper & ~is_same)
            lo, hi = np.searchsorted(chosen, [diff_before, diff_before + len(diff_at)])
            keep_mask.flat[diff_at[chosen[lo:hi] - diff_before]] = True
            diff_before += len(diff_at)
        distances.append(_cosine_distances(x[rows], x[start:])[keep_mask].astype(np.float64))
        same.append(is_same[keep_mask])
    return np.concatenate(distances), np.concatenate(same)


def _roc(distances: np.ndarray, same: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(far, tar, threshold) at every distinct distance, ascending; the first point (-inf) accepts nothing."""
    d = np.asarray(distances, dtype=np.float64).reshape(-1)
    s = np.asarray(same, dtype=bool).reshape(-1)
    if len(d) != len(s):
        raise ValueError(f"distances ({len(d)}) and same ({len(s)}) differ in length")
    n_same = int(s.sum())
    if n_same == 0 or n_same == len(s):
        raise CnnkitError(_TOO_FEW.format(same=n_same, diff=len(s) - n_same))
    try:
        from sklearn.metrics import roc_curve
    except ImportError:
        raise CnnkitError("open-set verification figures need scikit-learn: pip install scikit-learn") from None
    # same pairs are the positives, scored by -distance; every point kept, for the exact TAR at a FAR
    far, tar, scores = roc_curve(s, -d, drop_intermediate=False)
    return far, tar, -scores


def _tar_at(far: np.ndarray, tar: np.ndarray, thresholds: np.ndarray, target: float) -> tuple[float, float]:
    """TAR and distance threshold at the largest observed threshold whose FAR is at most ``target``: no
    interpolation towards the target, so the TAR is never more than what a threshold achieves."""
    i = int(np.searchsorted(far, target, side="right")) - 1  # far[0] = 0: i >= 0
    # -inf (accept nothing: the nearest pair is a different identity) is no threshold a gallery can hold
    return float(tar[i]), float(max(thresholds[i], 0.0))


def _eer(far: np.ndarray, tar: np.ndarray) -> float:
    """The rate where FAR = FRR (1 - TAR), linearly interpolated between the two ROC points around the crossing."""
    gap = far - (1.0 - tar)  # rises from -1 at (0, 0) to 1 at (1, 1)
    i = int(np.argmax(gap >= 0))
    if gap[i] == 0:
        return float(far[i])
    t = -gap[i - 1] / (gap[i] - gap[i - 1])
    return float(far[i - 1] + t * (far[i] - far[i - 1]))


def _verification(distances: np.ndarray, same: np.ndarray, fars: tuple[float, ...]
                  ) -> tuple[dict[str, float], tuple[np.ndarray, np.ndarray, np.ndarray]]:
    from sklearn.metrics import auc

    roc = _roc(distances, same)
    far, tar, thresholds = roc
    # the trapezoids under the full curve: what roc_auc_score computes, without sorting the pairs again
    out: dict[str, float] = {"roc_auc": float(auc(far, tar))}
    for f in fars:
        tag = far_tag(f)
        out[f"tar_far{tag}"], out[f"threshold_far{tag}"] = _tar_at(far, tar, thresholds, f)
    out["eer"] = _eer(far, tar)
    n_same = int(np.count_nonzero(same))
    out["pairs_same"], out["pairs_diff"] = n_same, int(np.size(same)) - n_same
    return out, roc


def verification_scores(distances: np.ndarray, same: np.ndarray,
                        fars: tuple[float, ...] = (0.01, 0.001)) -> dict[str, float]:
    """Verification figures of pairs: ``(P,)`` cosine distances and ``(P,)`` bool same-identity flags ->
    ``roc_auc``; per FAR f in ``fars``, ``tar_far{far_tag(f)}`` (fraction of same pairs accepted at the largest
    distance threshold whose FAR is at most f: conservative, not interpolated) and ``threshold_far{tag}`` (that
    cosine distance); ``eer`` (fraction); ``pairs_same``, ``pairs_diff`` (counts). See the module's sources."""
    return _verification(distances, same, tuple(fars))[0]


def threshold_for_far(distances: np.ndarray, same: np.ndarray, far: float) -> float:
    """The cosine distance threshold at FAR ``far``, as in :func:`verification_scores`; 0 when no distance
    keeps the FAR that low (the closest pair is a different identity)."""
    far_tag(far)
    return _tar_at(*_roc(distances, same), far)[1]


def _queries(y: np.ndarray, max_queries: int, seed: int) -> np.ndarray:
    _, inverse, counts = np.unique(y, return_inverse=True, return_counts=True)
    queries = np.flatnonzero(counts[inverse.reshape(-1)] >= 2)  # a query needs another image of its identity
    if len(queries) > max_queries:
        queries = np.sort(np.random.default_rng(seed).choice(queries, size=max_queries, replace=False))
    return queries


def retrieval_scores(embeddings: np.ndarray, labels: np.ndarray, ks: tuple[int, ...] = (1, 5),
                     max_queries: int = 2000, seed: int = 0) -> dict[str, float]:
    """Retrieval figures: ``(N, D)`` embeddings and ``(N,)`` labels -> ``rank{k}`` for k in ``ks`` (the CMC at k:
    the fraction of queries with an image of their identity among their k nearest) and ``map`` (mean over
    queries of the average precision of the ranking), all fractions. Every image with another image of its
    identity is a query against all the others (itself left out), at most ``max_queries`` of them (a uniform
    sample, ``numpy.random.default_rng(seed)``). Scored with torchmetrics, a chunk of queries at a time."""
    from torchmetrics.retrieval import RetrievalHitRate, RetrievalMAP

    x, y = _normalised(embeddings, labels)
    queries = _queries(y, max_queries, seed)
    if len(queries) == 0:
        raise CnnkitError(_TOO_FEW.format(same=0, diff=len(y) * (len(y) - 1) // 2))
    metrics = {f"rank{k}": RetrievalHitRate(top_k=k) for k in ks}
    metrics["map"] = RetrievalMAP()
    totals = dict.fromkeys(metrics, 0.0)
    chunk = max(1, _BLOCK_ELEMENTS // len(x))
    for start in range(0, len(queries), chunk):
        q = queries[start:start + chunk]
        rows = np.arange(len(q))
        # the score is 1 + cos = 2 - d, in float32 as torchmetrics casts it; its AP counts a document scored <= 0
        # as irrelevant, so an image exactly opposite the query is scored just above 0
        score = np.maximum(2.0 - _cosine_distances(x[q], x), np.finfo(np.float32).tiny)
        relevant = y[q][:, None] == y[None, :]
        score[rows, q], relevant[rows, q] = -np.inf, False  # the query itself: last, and cut off below
        lists = _ranked_lists(score, relevant, max(ks, default=1))
        for name, metric in metrics.items():
            # a mean over queries: each chunk's mean, weighted by its queries, and the states freed between
            metric.update(*lists["map" if name == "map" else "top"])
            totals[name] += float(metric.compute()) * len(q)
            metric.reset()
    return {name: total / len(queries) for name, total in totals.items()}


def _ranked_lists(score: np.ndarray, relevant: np.ndarray, top: int) -> dict[str, tuple[torch.Tensor, ...]]:
    """(preds, target, indexes) for torchmetrics from ``(Q, N)`` scores: "top", each query's ``top`` best (all
    a hit rate at k <= top reads), and "map", the documents down to each query's last relevant one (those
    below it do not change its AP). Sorting 20,000 documents per query per metric took 40 s for 2,000 queries."""
    top = min(top, score.shape[1] - 1)
    best, at = torch.from_numpy(score).topk(top, dim=1)
    hits = torch.from_numpy(relevant).gather(1, at)
    queries = torch.arange(len(score))
    out: dict[str, tuple[torch.Tensor, ...]] = {"top": (best.reshape(-1), hits.reshape(-1),
                                                        queries.repeat_interleave(top))}
    last = np.where(relevant, score, np.inf).min(1, keepdims=True)
    r, c = np.nonzero(score >= last)
    out["map"] = (torch.from_numpy(score[r, c]), torch.from_numpy(relevant[r, c]), torch.from_numpy(r))
    return out


def enrolment_rank1(embeddings: np.ndarray, labels: np.ndarray, per_identity: int = 5,
                    seed: int = 0) -> dict[str, float]:
    """Identification against enrolled galleries: ``(N, D)`` embeddings and ``(N,)`` labels -> ``enrol_rank1``
    (fraction of queries whose nearest identity is their own) and ``enrol_queries`` (count). Per identity,
    ``per_identity`` images (``numpy.random.default_rng(seed)``) are enrolled and the others are queries;
    identities with at most ``per_identity`` images are enrolled whole (distractors, no queries). An
    identity's distance to a query is that of its nearest enrolled image."""
    if per_identity < 1:
        raise CnnkitError(f"per_identity {per_identity}: enrol at least one image per identity")
    x, y = _normalised(embeddings, labels)
    _, inverse, counts = np.unique(y, return_inverse=True, return_counts=True)
    inverse = inverse.reshape(-1)
    rng = np.random.default_rng(seed)
    gallery, queries, sizes = [], [], []
    for members in np.split(np.argsort(inverse, kind="stable"), np.cumsum(counts)[:-1]):
        enrolled = np.zeros(len(members), dtype=bool)
        enrolled[rng.choice(len(members), size=min(per_identity, len(members)), replace=False)] = True
        gallery.append(members[enrolled])
        queries.append(members[~enrolled])
        sizes.append(int(enrolled.sum()))
    q, g = np.concatenate(queries), np.concatenate(gallery)
    if len(q) == 0:
        raise CnnkitError(f"enrolment rank-1 with {per_identity} images enrolled per identity needs an identity "
                          f"with more images than that: lower per_identity or add images")
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])  # each identity's first column in the gallery
    right, step = 0, max(1, _BLOCK_ELEMENTS // len(g))
    for start in range(0, len(q), step):
        part = q[start:start + step]
        nearest = np.minimum.reduceat(_cosine_distances(x[part], x[g]), starts, axis=1).argmin(1)
        right += int((nearest == inverse[part]).sum())
    return {"enrol_rank1": right / len(q), "enrol_queries": len(q)}


def _thin_roc(far: np.ndarray, tar: np.ndarray, thresholds: np.ndarray) -> list[dict[str, float]]:
    """A few hundred ROC points: log-spaced in FAR (where verification is read) and evenly spaced too."""
    n_diff_far = far[far > 0].min()  # the smallest FAR there is: one different-identity pair accepted
    grid = np.concatenate([np.geomspace(n_diff_far, 1.0, _ROC_ROWS // 2), np.linspace(0.0, 1.0, _ROC_ROWS // 2)])
    index = np.unique(np.concatenate([[0], np.searchsorted(far, grid, side="right") - 1, [len(far) - 1]]))
    return [{"far": float(far[i]), "tar": float(tar[i]), "threshold": float(thresholds[i])} for i in index]


class VerificationMetrics:
    """The engine's metrics for the recognize task: streams embeddings ``(N, D)`` and identity labels ``(N,)``;
    ``compute()`` gives the verification and retrieval figures of the whole validation split."""

    def __init__(self, target_far: float = 0.001):
        far_tag(target_far)
        self.target_far = target_far
        self._last: dict[str, Any] = {}
        self._roc_rows: list[dict[str, float]] = []
        self._said: set[str] = set()  # warnings given (once per run)
        self.reset()

    def reset(self) -> None:
        self._embeddings: list[np.ndarray] = []
        self._labels: list[np.ndarray] = []

    def update(self, outputs: torch.Tensor, targets: torch.Tensor) -> None:
        self._embeddings.append(outputs.detach().float().cpu().numpy())
        self._labels.append(targets.detach().cpu().numpy().reshape(-1))

    def compute(self) -> dict[str, float]:
        """roc_auc, tar_far1, tar_far01, eer, rank1, rank5, map (fractions) and threshold (the cosine distance
        at ``target_far``); CnnkitError when the split has no same-identity or no different-identity pair."""
        x = np.concatenate(self._embeddings) if self._embeddings else np.zeros((0, 1), dtype=np.float32)
        y = np.concatenate(self._labels) if self._labels else np.zeros(0, dtype=np.int64)
        distances, same = pair_distances(x, y)
        self._warn(distances, same)
        scores, (far, tar, thresholds) = _verification(distances, same, (0.01, 0.001))
        threshold = _tar_at(far, tar, thresholds, self.target_far)[1]
        out = {k: scores[k] for k in ("roc_auc", "tar_far1", "tar_far01", "eer")}
        out.update(retrieval_scores(x, y))
        out["threshold"] = threshold
        self._last = {**scores, **out, "target_far": self.target_far, "distance": "cosine", "images": len(y),
                      "identities": len(np.unique(y))}
        self._roc_rows = _thin_roc(far, tar, thresholds)
        return out

    def _warn(self, distances: np.ndarray, same: np.ndarray) -> None:
        """Once: a threshold that rests on less than one different-identity pair, and embeddings that collapsed
        (every pair nearly the same vector): both make the saved threshold mean nothing, with exit 0."""
        different = int((~same).sum())
        if different * self.target_far < 1 and "pairs" not in self._said:
            self._said.add("pairs")
            LOGGER.warning("warning: validation gives %d different-identity pairs: a false accept rate of %g rests on "
                           "less than one of them, so the saved threshold is that of the closest such pair; hold out "
                           "more identities (--val-split) or raise --target-far", different, self.target_far)
        if different and float(np.median(distances[~same])) < COLLAPSED and "collapse" not in self._said:
            self._said.add("collapse")
            LOGGER.warning("warning: embeddings of different identities are nearly the same vector (median cosine "
                           "distance %.4f): train longer, or lower --lr", float(np.median(distances[~same])))

    def save(self, folder: Path) -> list[Path]:
        """roc.csv (far, tar, threshold; thinned) and verification.json (the figures) in ``folder``."""
        from cnnkit.files import atomic_write_bytes, atomic_write_csv, json_bytes

        if not self._last:
            self.compute()
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        roc, figures = folder / "roc.csv", folder / "verification.json"
        atomic_write_csv(roc, self._roc_rows, ["far", "tar", "threshold"])
        atomic_write_bytes(figures, json_bytes(self._last, indent=2))
        return [roc, figures]

    def table(self) -> str:
        """The figures as a few lines of text (rates in percent); '' before compute()."""
        s = self._last
        if not s:
            return ""
        at = f"{self.target_far * 100:g}%"
        return "\n".join([
            f"pairs {s['pairs_same']:,} same / {s['pairs_diff']:,} different ({s['images']:,} images, "
            f"{s['identities']:,} identities)",
            f"ROC AUC {s['roc_auc']:.4f}  EER {s['eer']:.2%}",
            f"TAR {s['tar_far1']:.1%} at FAR 1%  TAR {s['tar_far01']:.1%} at FAR 0.1%",
            f"threshold (cosine distance) {s['threshold']:.4f} at FAR {at}",
            f"rank-1 {s['rank1']:.1%}  rank-5 {s['rank5']:.1%}  mAP {s['map']:.3f}",
        ])

    def card_extra(self) -> dict[str, Any]:
        """What the model card keeps of the last compute(): the threshold, its FAR and the distance."""
        if not self._last:
            return {}
        return {"threshold": float(self._last["threshold"]), "target_far": self.target_far, "distance": "cosine"}

"""Open-set recognition metrics against hand computations, scikit-learn and brute-force loops."""

from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from cnnkit.errors import CnnkitError
from cnnkit.metrics import verification as V

# six unit vectors in 2-D: identities A (0, 40 degrees), B (75, 95), C (180, 250); the 15 angles between
# them are all different, so the ROC below has no ties
ANGLES = np.array([0.0, 40.0, 75.0, 95.0, 180.0, 250.0])
LABELS = np.array([0, 0, 1, 1, 2, 2])


def unit(degrees: np.ndarray) -> np.ndarray:
    return np.stack([np.cos(np.radians(degrees)), np.sin(np.radians(degrees))], 1)


def d(degrees: float) -> float:
    """The cosine distance of two unit vectors ``degrees`` apart."""
    return 1.0 - math.cos(math.radians(degrees))


def test_far_tag():
    assert [V.far_tag(f) for f in (0.01, 0.001, 0.0001, 0.1, 0.005)] == ["1", "01", "001", "10", "05"]
    for bad in (0.0, 1.0, -0.1):
        with pytest.raises(CnnkitError, match="false accept rate"):
            V.far_tag(bad)


def test_pair_distances_by_hand():
    distances, same = V.pair_distances(unit(ANGLES), LABELS)
    # pairs (0,1) (0,2) ... (4,5) in row-major order; an angle over 180 degrees is the other way round
    angles = [40, 75, 95, 180, 110, 35, 55, 140, 150, 20, 105, 175, 85, 155, 70]
    assert distances.dtype == np.float64 and same.dtype == bool
    np.testing.assert_allclose(distances, [d(a) for a in angles], atol=1e-6)
    assert same.tolist() == [i in (0, 9, 14) for i in range(15)]


def test_verification_by_hand():
    # sorted by distance: 20 same, 35 diff, 40 same, 55 diff, 70 same, then the other 10 different pairs.
    # ROC (far, tar) in twelfths and thirds: (0,0) (0,1) (1,1) (1,2) (2,2) (2,3) (3,3) ... (12,3)
    scores = V.verification_scores(*V.pair_distances(unit(ANGLES), LABELS), fars=(0.01, 0.1, 0.2))
    # AUC: each different pair counts the same pairs closer than it: 1/3 + 2/3 + 10 * 1, over 12
    assert scores["roc_auc"] == pytest.approx(11 / 12)
    assert scores["tar_far1"] == pytest.approx(1 / 3)  # FAR 0 only: the 20-degree pair
    assert scores["threshold_far1"] == pytest.approx(d(20), abs=1e-6)
    assert scores["tar_far10"] == pytest.approx(2 / 3)  # FAR 1/12 <= 0.1, 2/12 is not
    assert scores["threshold_far10"] == pytest.approx(d(40), abs=1e-6)
    assert scores["tar_far20"] == pytest.approx(1.0)
    assert scores["threshold_far20"] == pytest.approx(d(70), abs=1e-6)
    # FAR - FRR: ... (2/12, FRR 1/3) then (2/12, FRR 0): they cross at FAR = FRR = 1/6
    assert scores["eer"] == pytest.approx(1 / 6)
    assert (scores["pairs_same"], scores["pairs_diff"]) == (3, 12)
    assert V.threshold_for_far(*V.pair_distances(unit(ANGLES), LABELS), 0.1) == pytest.approx(d(40), abs=1e-6)


def test_eer_interpolates_and_threshold_floor():
    # a same and a different pair tied at 0.3: the ROC steps (0, 1/2) -> (1/2, 1) diagonally; FAR - FRR goes
    # -1/2 -> 1/2, so the crossing is halfway: FAR 1/4, FRR 1/4
    distances, same = np.array([0.1, 0.3, 0.3, 0.5]), np.array([True, True, False, False])
    scores = V.verification_scores(distances, same, fars=(0.01,))
    assert scores["eer"] == pytest.approx(0.25)
    assert scores["roc_auc"] == pytest.approx(roc_auc_score(same, -distances))
    assert V.verification_scores(np.array([0.1, 0.2, 0.6, 0.9]), same)["eer"] == 0.0
    # the closest pair is a different identity: nothing keeps FAR at 1%, so accept nothing at threshold 0
    flipped = V.verification_scores(np.array([0.5, 0.6, 0.1, 0.7]), same, fars=(0.01,))
    assert (flipped["tar_far1"], flipped["threshold_far1"]) == (0.0, 0.0)


def brute_tar(distances: np.ndarray, same: np.ndarray, far: float) -> tuple[float, float]:
    """The largest observed distance whose FAR is at most ``far``, by trying each."""
    best_t, best_tar = -math.inf, 0.0
    for t in np.unique(distances):
        accepted = distances <= t
        if accepted[~same].mean() <= far and t > best_t:
            best_t, best_tar = t, accepted[same].mean()
    return best_tar, max(best_t, 0.0)


def test_verification_random_against_sklearn_and_brute_force():
    rng = np.random.default_rng(1)
    same = rng.random(3000) < 0.2
    distances = np.round(rng.normal(1.0, 0.3, 3000) - 0.4 * same, 2)  # rounded: many ties
    scores = V.verification_scores(distances, same, fars=(0.01, 0.001, 0.1))
    assert scores["roc_auc"] == pytest.approx(roc_auc_score(same, -distances), abs=1e-12)
    for f in (0.01, 0.001, 0.1):
        tag = V.far_tag(f)
        assert (scores[f"tar_far{tag}"], scores[f"threshold_far{tag}"]) == pytest.approx(brute_tar(distances, same, f))
    far = np.array([(distances[~same] <= t).mean() for t in np.unique(distances)])
    frr = np.array([(distances[same] > t).mean() for t in np.unique(distances)])
    assert np.min(np.maximum(far, frr)) >= scores["eer"] - 1e-9  # no threshold does better on both


def test_retrieval_by_hand():
    # nearest first, per query: 0: 1+ | 1: 2- 0+ | 2: 3+ | 3: 2+ | 4: 5+ | 5: 4+  (+ same identity)
    # AP: 1, 1/2, 1, 1, 1, 1; only query 1 misses at rank 1
    scores = V.retrieval_scores(unit(ANGLES), LABELS, ks=(1, 2, 5))
    assert scores == pytest.approx({"rank1": 5 / 6, "rank2": 1.0, "rank5": 1.0, "map": 5.5 / 6})


def brute_retrieval(x: np.ndarray, y: np.ndarray, queries: np.ndarray, ks: tuple[int, ...]) -> dict[str, float]:
    x = x / np.linalg.norm(x, axis=1, keepdims=True)
    hits = {k: 0 for k in ks}
    ap_sum = 0.0
    for q in queries:
        others = [j for j in range(len(x)) if j != q]
        order = sorted(others, key=lambda j: 1 - float(x[q] @ x[j]))
        relevant = [y[j] == y[q] for j in order]
        for k in ks:
            hits[k] += any(relevant[:k])
        found, precisions = 0, []
        for rank, r in enumerate(relevant, 1):
            if r:
                found += 1
                precisions.append(found / rank)
        ap_sum += sum(precisions) / len(precisions)
    return {**{f"rank{k}": hits[k] / len(queries) for k in ks}, "map": ap_sum / len(queries)}


def test_retrieval_random_against_brute_force():
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(60, 8)), rng.integers(0, 6, 60)
    y[0] = 99  # a singleton: no query
    expected = brute_retrieval(x, y, np.flatnonzero(y != 99), (1, 3, 5))
    assert V.retrieval_scores(x, y, ks=(1, 3, 5)) == pytest.approx(expected, abs=1e-6)
    sampled = V.retrieval_scores(x, y, ks=(1, 3, 5), max_queries=10, seed=4)
    queries = V._queries(y, 10, 4)
    assert len(queries) == 10
    assert sampled == pytest.approx(brute_retrieval(x, y, queries, (1, 3, 5)), abs=1e-6)


def test_enrolment_by_hand():
    # A at +-80 degrees and C at 180 +- 10 (mirror images: which one is enrolled changes no distance that
    # matters), B one image at 0 (enrolled whole, a distractor), D three copies at 120. A's query is nearer
    # D (40 degrees) or B (80) than A's other image (160): wrong; C's query finds C's other image (20): right;
    # D's two queries find D's enrolled copy (0): right. 3 of 4, whatever the seed.
    angles = np.array([80.0, -80.0, 0.0, 170.0, 190.0, 120.0, 120.0, 120.0])
    labels = np.array([0, 0, 1, 2, 2, 3, 3, 3])
    for seed in range(4):
        assert V.enrolment_rank1(unit(angles), labels, per_identity=1, seed=seed) == pytest.approx(
            {"enrol_rank1": 0.75, "enrol_queries": 4})
    with pytest.raises(CnnkitError, match="lower per_identity"):
        V.enrolment_rank1(unit(angles), labels, per_identity=3)


def model_embeddings(strong: bool, identities: int = 30, per: int = 4, dim: int = 64, seed: int = 3):
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(identities), per)
    if not strong:
        return rng.normal(size=(len(labels), dim)).astype(np.float32), labels
    centres = rng.normal(size=(identities, dim))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    noisy = centres[labels] + rng.normal(scale=0.1 / math.sqrt(dim), size=(len(labels), dim))
    return noisy.astype(np.float32), labels


def test_strong_and_random_models():
    x, y = model_embeddings(strong=True)
    scores = V.verification_scores(*V.pair_distances(x, y))
    assert scores["roc_auc"] > 0.99 and scores["eer"] < 0.02
    retrieval = V.retrieval_scores(x, y)
    assert retrieval["rank1"] == 1.0 and retrieval["map"] > 0.99
    assert V.enrolment_rank1(x, y, per_identity=2)["enrol_rank1"] == 1.0
    x, y = model_embeddings(strong=False)
    assert abs(V.verification_scores(*V.pair_distances(x, y))["roc_auc"] - 0.5) < 0.08


def test_pair_distances_blocks_and_sampling(monkeypatch):
    x, y = model_embeddings(strong=False, identities=10, per=10, dim=6)  # 4,950 pairs, 450 same
    i, j = np.triu_indices(len(x), 1)
    xn = x / np.linalg.norm(x, axis=1, keepdims=True)
    full = np.clip(1 - np.einsum("pd,pd->p", xn[i], xn[j]), 0, 2)
    full_same = y[i] == y[j]
    distances, same = V.pair_distances(x, y)
    np.testing.assert_allclose(distances, full, atol=1e-6)
    assert (same == full_same).all()
    sampled, sampled_same = V.pair_distances(x, y, max_pairs=500, seed=7)
    assert len(sampled) == 500 and sampled_same.sum() == 450  # every same pair, 50 different ones
    np.testing.assert_allclose(sampled[sampled_same], full[full_same], atol=1e-6)
    assert (np.abs(sampled[~sampled_same, None] - full[None, ~full_same]).min(1) < 1e-6).all()
    # the sample is one of the different pairs, whatever the block size, and the same for the same seed
    monkeypatch.setattr(V, "_BLOCK_ELEMENTS", 37)
    blocked, _ = V.pair_distances(x, y, max_pairs=500, seed=7)
    np.testing.assert_allclose(blocked, sampled, atol=1e-6)  # BLAS rounds by block shape
    assert not np.array_equal(V.pair_distances(x, y, max_pairs=500, seed=8)[0], sampled)
    # same pairs alone over max_pairs: all kept, and a tenth of max_pairs different ones
    crowded, crowded_same = V.pair_distances(x, y, max_pairs=100)
    assert (crowded_same.sum(), (~crowded_same).sum()) == (450, 10)
    assert len(V._sample(10**9, 1000, np.random.default_rng(0))) == 1000


def test_too_few_identities():
    x = np.random.default_rng(0).normal(size=(5, 4))
    for labels in (np.zeros(5), np.arange(5)):  # one identity; five singletons
        with pytest.raises(CnnkitError, match="at least two identities with two images each"):
            V.verification_scores(*V.pair_distances(x, labels))
    with pytest.raises(CnnkitError, match="at least two identities with two images each"):
        V.retrieval_scores(x, np.arange(5))
    with pytest.raises(CnnkitError, match="NaN"):
        V.pair_distances(np.full((3, 2), np.nan), np.arange(3))


def test_verification_metrics_round_trip(tmp_path):
    metrics = V.VerificationMetrics(target_far=0.01)
    assert metrics.card_extra() == {} and metrics.table() == ""
    x, y = model_embeddings(strong=True)
    for part in (slice(0, 50), slice(50, None)):
        metrics.update(torch.from_numpy(x[part]).half(), torch.from_numpy(y[part]))
    out = metrics.compute()
    assert set(out) == {"roc_auc", "tar_far1", "tar_far01", "eer", "rank1", "rank5", "map", "threshold"}
    assert all(math.isfinite(v) for v in out.values())
    assert out["threshold"] == pytest.approx(V.threshold_for_far(*V.pair_distances(x, y), 0.01), abs=1e-3)
    assert metrics.card_extra() == {"threshold": out["threshold"], "target_far": 0.01, "distance": "cosine"}
    table = metrics.table()
    assert "ROC AUC" in table and "at FAR 1%" in table and "rank-1 100.0%" in table and "mAP" in table
    roc_csv, figures = metrics.save(tmp_path)
    assert (roc_csv, figures) == (tmp_path / "roc.csv", tmp_path / "verification.json")
    with roc_csv.open() as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["far", "tar", "threshold"] and 3 <= len(rows) <= 300
    assert rows[-1]["far"] == "1.0" and rows[-1]["tar"] == "1.0" and rows[0]["threshold"] == ""  # -inf: empty
    saved = json.loads(figures.read_text())
    assert saved["threshold"] == out["threshold"] and saved["pairs_same"] == 30 * 6 and saved["distance"] == "cosine"
    metrics.reset()
    with pytest.raises(CnnkitError, match="two identities"):
        metrics.compute()


def test_a_threshold_on_too_few_pairs_and_collapsed_embeddings_are_warned(caplog):
    """Regression (user trial): 108 different-identity pairs saved a FAR 0.1% threshold of 0 without a word."""
    import logging

    metrics = V.VerificationMetrics(target_far=0.001)
    collapsed = torch.ones(9, 4) + 1e-4 * torch.randn(9, 4, generator=torch.Generator().manual_seed(0))
    metrics.update(collapsed, torch.tensor([0, 0, 0, 1, 1, 1, 2, 2, 2]))
    with caplog.at_level(logging.WARNING, logger="cnnkit"):
        metrics.compute()
        metrics.compute()
    assert caplog.text.count("27 different-identity pairs") == 1  # once a run
    assert "nearly the same vector" in caplog.text

"""Embedding measures: spread (collapse) and k-NN, the latter checked against scikit-learn."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
from sklearn.neighbors import KNeighborsClassifier

from cnnkit.metrics.collection import kmeans, near_duplicates, neighbours
from cnnkit.metrics.embedding import EmbeddingMetrics, knn_accuracy, knn_predict, spread


def test_spread_is_zero_for_a_collapsed_embedding_and_near_one_for_a_spread_one():
    assert spread(torch.ones(50, 16)) == pytest.approx(0.0, abs=1e-6)
    assert spread(torch.randn(2000, 16, generator=torch.Generator().manual_seed(0))) == pytest.approx(1.0, abs=0.05)


def test_constant_input_warns_of_collapse(caplog):
    metrics = EmbeddingMetrics()
    metrics.update({"embedding": torch.ones(10, 8), "projection": torch.ones(10, 4)}, torch.full((10,), -1))
    with caplog.at_level(logging.WARNING, logger="cnnkit"):
        results = metrics.compute()
    assert results["spread"] < 0.01 and "knn_top1" not in results  # no labels: no k-NN
    assert "collapsed" in caplog.text and "--lr" in caplog.text


def test_spread_is_the_projections_where_there_are_some(caplog):
    """Regression: pooled ReLU features (one orthant) of a discriminating encoder read as collapsed (0.03)."""
    g = torch.Generator().manual_seed(0)
    features = 5 + torch.rand(64, 32, generator=g)  # all positive, one large common direction
    assert spread(features) < 0.1
    metrics = EmbeddingMetrics()
    metrics.update({"embedding": features, "projection": torch.randn(64, 16, generator=g)}, torch.full((64,), -1))
    with caplog.at_level(logging.WARNING, logger="cnnkit"):
        assert metrics.compute()["spread"] > 0.8
    assert "collapsed" not in caplog.text
    reconstruction = EmbeddingMetrics(method="mae")  # no projector: spread shown, no collapse warning
    reconstruction.update({"embedding": features}, torch.full((64,), -1))
    with caplog.at_level(logging.WARNING, logger="cnnkit"):
        assert reconstruction.compute()["spread"] < 0.1
    assert "collapsed" not in caplog.text


def test_one_nearest_neighbour_matches_scikit_learn():
    rng = np.random.default_rng(0)
    bank, labels = rng.normal(size=(200, 8)).astype(np.float32), rng.integers(0, 3, 200)
    queries = rng.normal(size=(50, 8)).astype(np.float32)
    ours = knn_predict(torch.from_numpy(bank), torch.from_numpy(labels), torch.from_numpy(queries), k=1)
    ref = KNeighborsClassifier(n_neighbors=1, metric="cosine").fit(bank, labels).predict(queries)
    assert (ours.argmax(1).numpy() == ref).all()


def test_knn_separates_clusters_leaving_each_image_out():
    centres = torch.eye(4) * 10
    labels = torch.arange(4).repeat_interleave(25)
    embeddings = centres[labels] + torch.randn(100, 4, generator=torch.Generator().manual_seed(0))
    assert knn_accuracy(embeddings, labels, k=5) == 1.0
    metrics = EmbeddingMetrics(k=5)
    metrics.update({"embedding": embeddings}, labels)
    assert metrics.compute()["knn_top1"] == 1.0


def test_collection_neighbours_duplicates_and_clusters():
    base = np.eye(3, dtype=np.float32)
    embeddings = np.concatenate([base, base + 0.01])  # images 3..5 are near-copies of 0..2
    index, sims = neighbours(embeddings, embeddings[:1], 2)
    assert list(index[0]) == [0, 3] and sims[0, 1] > 0.99
    assert [(i, j) for i, j, _ in near_duplicates(embeddings, 0.99)] == [(0, 3), (1, 4), (2, 5)]
    clusters = kmeans(embeddings, 3)
    assert all(clusters[i] == clusters[i + 3] for i in range(3)) and len(set(clusters)) == 3

"""VectorIndex: exact cosine search, numpy and faiss alike; nearest_identities groups rows by identity."""

from __future__ import annotations

import numpy as np
import pytest

from cnnkit.errors import CnnkitError
from cnnkit.recognition import index as index_module
from cnnkit.recognition.index import VectorIndex, nearest_identities


def brute_force(vectors: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """Cosine distances (Q, N) in float64."""
    v = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    q = queries / np.linalg.norm(queries, axis=1, keepdims=True)
    return 1.0 - q @ v.T


@pytest.fixture
def data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.normal(size=(300, 16)).astype(np.float32), rng.normal(size=(25, 16))


@pytest.mark.parametrize("k", [1, 7, 300, 1000])
def test_exact_matches_brute_force(data, k):
    vectors, queries = data
    distances, rows = VectorIndex(vectors, use_faiss=False).search(queries, k)
    want = brute_force(vectors, queries)
    order = np.argsort(want, axis=1)[:, :min(k, len(vectors))]
    assert distances.dtype == np.float32 and rows.dtype == np.int64
    assert distances.shape == rows.shape == (len(queries), min(k, len(vectors)))
    np.testing.assert_array_equal(rows, order)
    np.testing.assert_allclose(distances, np.take_along_axis(want, order, axis=1), atol=1e-5)
    assert (np.diff(distances, axis=1) >= 0).all()


def test_chunks_of_queries_give_the_same_results(data, monkeypatch):
    vectors, queries = data
    whole = VectorIndex(vectors, use_faiss=False).search(queries, 5)
    monkeypatch.setattr(index_module, "_BLOCK_FLOATS", 4 * len(vectors))  # 4 queries a chunk
    chunked = VectorIndex(vectors, use_faiss=False).search(queries, 5)
    np.testing.assert_array_equal(whole[1], chunked[1])
    np.testing.assert_allclose(whole[0], chunked[0], atol=1e-6)  # BLAS sums in another order


def test_faiss_and_exact_agree(data):
    pytest.importorskip("faiss")
    vectors, queries = data
    exact = VectorIndex(vectors, use_faiss=False)
    fast = VectorIndex(vectors, use_faiss=True)
    assert (exact.backend, fast.backend) == ("exact", "faiss")
    for k in (1, 10, 300, 500):
        d1, r1 = exact.search(queries, k)
        d2, r2 = fast.search(queries, k)
        assert r2.dtype == np.int64 and d2.dtype == np.float32
        np.testing.assert_array_equal(r1, r2)
        np.testing.assert_allclose(d1, d2, atol=1e-5)


def test_backend_choice_without_faiss(data, monkeypatch):
    monkeypatch.setattr(index_module, "faiss_available", lambda: False)
    assert VectorIndex(data[0]).backend == "exact"
    with pytest.raises(CnnkitError, match="faiss"):
        VectorIndex(data[0], use_faiss=True)


@pytest.mark.parametrize("use_faiss", [False, True])
def test_empty_index_and_bad_shapes(use_faiss):
    if use_faiss:
        pytest.importorskip("faiss")
    empty = VectorIndex(np.zeros((0, 4), np.float32), use_faiss=use_faiss)
    distances, rows = empty.search(np.ones((3, 4)), 5)
    assert len(empty) == 0 and distances.shape == rows.shape == (3, 0)
    assert distances.dtype == np.float32 and rows.dtype == np.int64
    with pytest.raises(ValueError):
        empty.search(np.ones((3, 5)), 1)
    with pytest.raises(ValueError):
        empty.search(np.ones((3, 4)), 0)


def test_distances_are_cosine_distances():
    vectors = np.array([[1, 0], [0, 2], [-3, 0]], np.float32)
    distances, rows = VectorIndex(vectors, use_faiss=False).search(np.array([[5.0, 0.0]]), 3)
    np.testing.assert_array_equal(rows, [[0, 1, 2]])
    np.testing.assert_allclose(distances, [[0, 1, 2]], atol=1e-6)


def test_nearest_identities_groups_rows():
    rows = np.array([[4, 3, 0, 2, 1], [1, 0, -1, -1, -1]])
    distances = np.array([[0.1, 0.2, 0.3, 0.4, 0.5], [0.6, 0.7, 0, 0, 0]], np.float32)
    identity = np.array([7, 8, 9, 7, 7])  # rows 0, 3, 4 are identity 7
    got = nearest_identities(distances, rows, identity, 2)
    assert [[i for i, _ in q] for q in got] == [[7, 9], [8, 7]]
    assert got[0][0][1] == pytest.approx(0.1) and got[0][1][1] == pytest.approx(0.4)
    assert nearest_identities(distances, rows, identity, 5)[0] == [(7, pytest.approx(0.1)), (9, pytest.approx(0.4)),
                                                                   (8, pytest.approx(0.5))]
    assert nearest_identities(np.zeros((2, 0)), np.zeros((2, 0), np.int64), identity, 3) == [[], []]

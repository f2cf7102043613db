"""Exact nearest-neighbour search over embeddings by cosine distance (torch-free; faiss when installed).

Distances are cosine distances ``d = 1 - cos(a, b)``, in [0, 2]: 0 for the same direction, 1 for orthogonal
vectors, 2 for opposite ones. Both backends search exhaustively, so they return the same neighbours. numpy's
matrix product is the default: on 2 CPU cores faiss-cpu's flat index took 2.3x numpy's time per query at
100,000 vectors and 2.3x at 1,000,000 (benchmarks/RESULTS.md, "Recognition by embedding"); ``use_faiss=True``
chooses it where it is faster.
"""

from __future__ import annotations

import numpy as np

from cnnkit.errors import CnnkitError

# the exact search holds a (queries, N) float32 block of similarities: chunks of queries keep it near 64 MB
_BLOCK_FLOATS = 1 << 24


def normalise(vectors: np.ndarray) -> np.ndarray:
    """Rows of ``vectors`` (N, D) scaled to unit L2 length, as contiguous float32 (N, D); a row of zeros has
    no direction and stays zeros (its cosine with anything is 0, a distance of 1)."""
    v = np.ascontiguousarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(v, axis=1, keepdims=True)
    return np.ascontiguousarray(v / np.maximum(norms, np.float32(1e-12)), dtype=np.float32)


def faiss_available() -> bool:
    """Whether the optional faiss package imports (a broken install counts as none: the search falls back)."""
    try:
        import faiss  # noqa: F401
    except ImportError:
        return False
    return True


class VectorIndex:
    """Exact cosine-distance search over ``vectors`` (N, D) float32, normalised here.

    ``use_faiss``: True needs faiss (a flat inner-product index: exhaustive, not approximate); False or None
    uses numpy, measured faster here. ``backend`` says which: ``"faiss"`` or ``"exact"``.
    """

    def __init__(self, vectors: np.ndarray, use_faiss: bool | None = None) -> None:
        vectors = np.asarray(vectors)
        if vectors.ndim != 2:
            raise ValueError(f"vectors must be (N, D), not of shape {vectors.shape}")
        self.dim = int(vectors.shape[1])
        self._vectors = normalise(vectors)
        if use_faiss and not faiss_available():
            raise CnnkitError("a faiss index needs faiss, which is not installed: pip install faiss-cpu, "
                              "or search without it (exact numpy search gives the same results)")
        self.backend = "faiss" if use_faiss else "exact"
        self._faiss = None
        if use_faiss and len(self._vectors):
            import faiss

            self._faiss = faiss.IndexFlatIP(self.dim)
            self._faiss.add(self._vectors)

    def __len__(self) -> int:
        return len(self._vectors)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` nearest rows to each of ``queries`` (Q, D), nearest first.

        Returns (distances, rows): cosine distances (Q, k') float32 in [0, 2] and row indices (Q, k') int64
        into the indexed vectors, with k' = min(k, N); an empty index gives (Q, 0) arrays. Equal distances come
        in the order of their rows with numpy; faiss may order exact ties otherwise.
        """
        queries = np.asarray(queries)
        if queries.ndim != 2 or queries.shape[1] != self.dim:
            raise ValueError(f"queries must be (Q, {self.dim}), not of shape {queries.shape}")
        if k < 1:
            raise ValueError(f"k must be at least 1, not {k}")
        kk = min(int(k), len(self))
        if kk == 0:
            return np.zeros((len(queries), 0), np.float32), np.zeros((len(queries), 0), np.int64)
        q = normalise(queries)
        if self._faiss is not None:
            sims, rows = self._faiss.search(q, kk)
            rows = rows.astype(np.int64)
        else:
            sims, rows = self._exact(q, kk)
        # rounding puts 1 - cos a hair outside [0, 2]
        return np.clip(1.0 - sims, 0.0, 2.0).astype(np.float32), rows

    def _exact(self, q: np.ndarray, kk: int) -> tuple[np.ndarray, np.ndarray]:
        """Similarities (Q, kk) float32 and rows (Q, kk) int64 of the kk most similar rows, by numpy."""
        n = len(self)
        step = max(1, _BLOCK_FLOATS // n)
        out_sims = np.empty((len(q), kk), np.float32)
        out_rows = np.empty((len(q), kk), np.int64)
        for start in range(0, len(q), step):
            sims = q[start:start + step] @ self._vectors.T  # (chunk, N)
            if kk < n:
                part = np.argpartition(-sims, kk - 1, axis=1)[:, :kk]
            else:
                part = np.broadcast_to(np.arange(n), sims.shape)
            part_sims = np.take_along_axis(sims, part, axis=1)
            # most similar first; ties by row, so that results do not depend on argpartition's internals
            order = np.lexsort((part, -part_sims), axis=1)
            out_rows[start:start + step] = np.take_along_axis(part, order, axis=1)
            out_sims[start:start + step] = np.take_along_axis(part_sims, order, axis=1)
        return out_sims, out_rows


def nearest_identities(index_distances: np.ndarray, index_rows: np.ndarray, identity_of_row: np.ndarray,
                       k: int) -> list[list[tuple[int, float]]]:
    """The ``k`` nearest identities of each query, from its nearest rows.

    ``index_distances`` (Q, R) and ``index_rows`` (Q, R) as ``VectorIndex.search`` gives them, nearest first
    (rows below 0, faiss's "none", are skipped); ``identity_of_row`` (N,) int: the identity of each indexed row.
    An identity's distance is that of its nearest row. Returns, per query, up to ``k`` (identity, distance)
    pairs, nearest first: fewer when the rows given hold fewer identities, so ask the index for enough rows
    (k times the most rows any identity has, at most N, always holds k identities when there are k).
    """
    identity_of_row = np.asarray(identity_of_row)
    out: list[list[tuple[int, float]]] = []
    for dists, rows in zip(np.asarray(index_distances), np.asarray(index_rows)):
        keep = rows >= 0
        dists, ids = dists[keep], identity_of_row[rows[keep]]
        # rows come nearest first, so an identity's first row is its nearest
        _, first = np.unique(ids, return_index=True)
        first_sorted = np.sort(first)[:k]
        out.append([(int(ids[i]), float(dists[i])) for i in first_sorted])
    return out

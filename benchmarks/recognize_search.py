"""Exact k-NN search time by cosine distance in a large gallery: ``cnnkit.recognition.index.VectorIndex`` with
numpy and with faiss-cpu (when installed), for ``benchmarks/recognize.py --search-bench``."""

from __future__ import annotations

import importlib.util
import time

import numpy as np

from cnnkit.recognition.index import VectorIndex, normalise


def search_bench(seed: int, n: int = 100_000, dim: int = 128, queries: int = 100, k: int = 5,
                 repeats: int = 5) -> dict:
    """Milliseconds per query (best of ``repeats``) of ``queries`` random unit vectors searched among ``n``, as
    one batch and one at a time; and whether faiss finds numpy's neighbours."""
    rng = np.random.default_rng(seed)
    gallery = normalise(rng.standard_normal((n, dim)))
    q = normalise(rng.standard_normal((queries, dim)))
    have_faiss = importlib.util.find_spec("faiss") is not None
    out: dict = {"gallery": n, "dim": dim, "queries": queries, "k": k, "via": "cnnkit.recognition.index.VectorIndex",
                 "faiss_installed": have_faiss, "repeats": repeats, "backends": {}}
    if have_faiss:
        import faiss

        out["faiss_threads"] = int(faiss.omp_get_max_threads())
    rows_of = {}
    for name in ("numpy", "faiss") if have_faiss else ("numpy",):
        start = time.perf_counter()
        index = VectorIndex(gallery, use_faiss=name == "faiss")
        build_s = time.perf_counter() - start
        index.search(q[:1], k)  # warm-up
        batch, single = [], []
        for _ in range(repeats):
            start = time.perf_counter()
            _, rows = index.search(q, k)
            batch.append(time.perf_counter() - start)
            start = time.perf_counter()
            for i in range(queries):
                index.search(q[i:i + 1], k)
            single.append(time.perf_counter() - start)
        rows_of[name] = np.asarray(rows)
        out["backends"][name] = {"build_seconds": round(build_s, 4),
                                 "ms_per_query_batched": 1000 * min(batch) / queries,
                                 "ms_per_query_one_at_a_time": 1000 * min(single) / queries}
    if "faiss" in rows_of:
        out["same_neighbours_as_numpy"] = float((rows_of["faiss"] == rows_of["numpy"]).all(1).mean())
    return out


def search_table(s: dict) -> str:
    lines = [f"search: {s['queries']} queries, k={s['k']}, in {s['gallery']:,} unit vectors of dim {s['dim']} "
             f"({s['via']})", "", "| backend | build s | ms/query (batch of 100) | ms/query (one at a time) |",
             "|---|---|---|---|"]
    for name, b in s["backends"].items():
        lines.append(f"| {name} | {b['build_seconds']:.3f} | {b['ms_per_query_batched']:.3f} | "
                     f"{b['ms_per_query_one_at_a_time']:.3f} |")
    return "\n".join(lines)

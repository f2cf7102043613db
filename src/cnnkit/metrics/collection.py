"""A collection of images through its embeddings: nearest neighbours, near-duplicates, clusters, a 2-D map.

Embeddings are compared by cosine similarity. k-means and t-SNE are scikit-learn's; UMAP is
umap-learn's, when installed. Every function takes ``(N, D)`` float arrays.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from cnnkit.errors import CnnkitError
from cnnkit.files import atomic_write_bytes


def normalised(embeddings: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(embeddings, axis=1, keepdims=True)
    return (embeddings / np.maximum(norms, 1e-12)).astype(np.float32)


def neighbours(collection: np.ndarray, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(indices, similarities), each ``(Q, k)``: the ``k`` most similar of ``collection`` for each query,
    most similar first."""
    sim = normalised(queries) @ normalised(collection).T
    k = min(k, sim.shape[1])
    index = np.argsort(-sim, axis=1, kind="stable")[:, :k]
    return index, np.take_along_axis(sim, index, axis=1)


def near_duplicates(embeddings: np.ndarray, threshold: float, chunk: int = 2048) -> list[tuple[int, int, float]]:
    """Pairs (i, j, similarity), i < j, with cosine similarity at least ``threshold``, most similar first."""
    z = normalised(embeddings)
    pairs = []
    for start in range(0, len(z), chunk):
        sim = z[start:start + chunk] @ z.T
        rows, cols = np.nonzero(sim >= threshold)
        for r, c in zip(rows, cols):
            i = start + int(r)
            if i < c:
                pairs.append((i, int(c), float(sim[r, c])))
    return sorted(pairs, key=lambda p: -p[2])


def kmeans(embeddings: np.ndarray, k: int, seed: int = 0) -> np.ndarray:
    """Cluster index ``(N,)`` of each embedding (scikit-learn's k-means on the normalised embeddings)."""
    from sklearn.cluster import KMeans

    if not 1 <= k <= len(embeddings):
        raise CnnkitError(f"--clusters {k}: choose between 1 and the number of images ({len(embeddings)})")
    return KMeans(n_clusters=k, n_init=4, random_state=seed).fit_predict(normalised(embeddings))


def project_2d(embeddings: np.ndarray, method: str = "tsne", seed: int = 0) -> np.ndarray:
    """``(N, 2)`` coordinates: t-SNE (scikit-learn) or UMAP (umap-learn)."""
    z = normalised(embeddings)
    if len(z) < 3:
        return np.zeros((len(z), 2), np.float32)
    if method == "umap":
        try:
            import umap
        except ImportError:
            raise CnnkitError("--map umap needs umap-learn: pip install umap-learn, or use --map tsne") from None
        return umap.UMAP(random_state=seed).fit_transform(z)
    from sklearn.manifold import TSNE

    return TSNE(2, perplexity=min(30.0, (len(z) - 1) / 3), init="pca", random_state=seed).fit_transform(z)


def draw_map(points: np.ndarray, out: Path, images: list | None = None, colours: np.ndarray | None = None,
             title: str = "") -> Path:
    """A picture of the 2-D map: thumbnails of ``images`` (PIL) at their points, or points coloured by
    ``colours`` (cluster indices)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.offsetbox import AnnotationBbox, OffsetImage

    fig, ax = plt.subplots(figsize=(10, 10), dpi=100)
    if colours is not None:
        ax.scatter(points[:, 0], points[:, 1], c=colours, cmap="tab20", s=8)
    else:  # a colour map without values to map is a matplotlib warning
        ax.scatter(points[:, 0], points[:, 1], c="tab:blue", s=8)
    if images is not None:
        for (x, y), im in zip(points, images):
            thumb = np.asarray(im.convert("RGB").resize((32, 32)))
            ax.add_artist(AnnotationBbox(OffsetImage(thumb, zoom=0.7), (x, y), frameon=False))
    ax.set_title(title)
    ax.set_xticks([])
    ax.set_yticks([])
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    atomic_write_bytes(out, buf.getvalue())
    return out

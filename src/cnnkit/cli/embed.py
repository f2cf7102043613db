"""``cnnkit embed``: one vector per image, and what they tell about a collection without labels."""

from __future__ import annotations

import argparse
import io
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from cnnkit.data.images import iter_sources, open_readable, set_max_pixels
from cnnkit.errors import CnnkitError
from cnnkit.files import atomic_write_bytes, atomic_write_csv, next_free


def cmd_embed(args: argparse.Namespace) -> int:
    from cnnkit.api import load_checkpoint_model

    set_max_pixels(args.max_pixels)
    if Path(args.weights).suffix.lower() in (".onnx", ".torchscript"):
        raise CnnkitError(f"{args.weights}: embeddings come from a checkpoint's encoder, which an export does not "
                          "keep; pass the checkpoint it was exported from (best.pt)")
    paths = collection(args.sources)
    check_requests(args, len(paths))
    model = load_checkpoint_model(args.weights, args.device)
    out = Path(args.out) if args.out else next_free(Path("runs") / "embed" / "exp")
    kept, vectors = [], []
    for i in range(0, len(paths), args.batch):
        chunk, images = open_readable(paths[i:i + args.batch], args.skip_bad)
        if images:
            kept += chunk
            vectors.append(model.embed(images, batch=args.batch))
    if not kept:
        raise CnnkitError("no readable images to embed")
    check_requests(args, len(kept))
    embeddings = np.concatenate(vectors)
    out.mkdir(parents=True, exist_ok=True)
    written = write_embeddings(out, kept, embeddings, args.parquet)
    if args.query:
        written.append(write_neighbours(out, model, kept, embeddings, args))
    clusters = None
    if args.clusters:
        from cnnkit.metrics.collection import kmeans

        clusters = kmeans(embeddings, args.clusters, args.seed)
        atomic_write_csv(out / "clusters.csv", [{"path": str(p), "cluster": int(c)} for p, c in zip(kept, clusters)])
        written.append(out / "clusters.csv")
        if args.cluster_links:
            written.append(link_clusters(out / "clusters", kept, clusters))
    if args.duplicates:
        from cnnkit.metrics.collection import near_duplicates

        pairs = near_duplicates(embeddings, args.duplicates)
        atomic_write_csv(out / "duplicates.csv", [{"path_a": str(kept[i]), "path_b": str(kept[j]),
                                                  "similarity": f"{s:.4f}"} for i, j, s in pairs])
        print(f"{len(pairs)} near-duplicate pairs at similarity >= {args.duplicates}")
        written.append(out / "duplicates.csv")
    if args.map:
        written.append(write_map(out, kept, embeddings, clusters, args))
    print(f"{len(kept)} images, {embeddings.shape[1]} dimensions; wrote {', '.join(p.name for p in written)} in "
          f"{out}")
    return 0


def collection(sources: list[str]) -> list[Path]:
    """The images to embed: files and globs as given, folders at any depth without their mask and label
    folders (as pretraining reads them)."""
    from cnnkit.data.unlabelled import image_files

    found: list[Path] = []
    for source in sources:
        found += image_files(Path(source)) if Path(source).is_dir() else iter_sources([source])
    if not found:
        raise CnnkitError(f"{' '.join(sources)}: no images found (mask and label folders are skipped); pass image "
                          "files, folders or globs")
    return list(dict.fromkeys(found))


def check_requests(args: argparse.Namespace, count: int) -> None:
    """What the options ask of ``count`` images, and the libraries they need, before any work is done."""
    if args.clusters and args.clusters > count:
        raise CnnkitError(f"--clusters {args.clusters}: more clusters than the {count} image(s) to embed; ask for "
                          f"at most {count}")
    if args.query:
        iter_sources(args.query)
    if args.parquet:
        try:
            import pandas  # noqa: F401
            import pyarrow  # noqa: F401
        except ImportError:
            raise CnnkitError("--parquet needs pandas and pyarrow: pip install pandas pyarrow (or drop --parquet "
                              "for embeddings.csv)") from None
    if args.map == "umap":
        try:
            import umap  # noqa: F401
        except ImportError:
            raise CnnkitError("--map umap needs umap-learn: pip install umap-learn, or use --map tsne") from None


def write_embeddings(out: Path, paths: list[Path], embeddings: np.ndarray, parquet: bool) -> list[Path]:
    """embeddings.npy ``(N, D)`` float32, and embeddings.csv (path, e0..eD-1) or .parquet, rows in one order."""
    buf = io.BytesIO()
    np.save(buf, embeddings.astype(np.float32))
    atomic_write_bytes(out / "embeddings.npy", buf.getvalue())
    atomic_write_bytes(out / "paths.txt", "".join(f"{p}\n" for p in paths).encode())
    columns = [f"e{i}" for i in range(embeddings.shape[1])]
    if parquet:
        try:
            import pandas as pd
        except ImportError:
            raise CnnkitError("--parquet needs pandas and pyarrow: pip install pandas pyarrow") from None
        frame = pd.DataFrame(embeddings, columns=columns)
        frame.insert(0, "path", [str(p) for p in paths])
        frame.to_parquet(out / "embeddings.parquet")
        return [out / "embeddings.npy", out / "paths.txt", out / "embeddings.parquet"]
    rows = [{"path": str(p), **{c: f"{v:.6g}" for c, v in zip(columns, row)}} for p, row in zip(paths, embeddings)]
    atomic_write_csv(out / "embeddings.csv", rows)
    return [out / "embeddings.npy", out / "paths.txt", out / "embeddings.csv"]


def write_neighbours(out: Path, model, paths: list[Path], embeddings: np.ndarray, args: argparse.Namespace) -> Path:
    """neighbours.csv: the ``--k`` most similar images of the collection to each ``--query`` image."""
    from cnnkit.metrics.collection import neighbours

    queries = iter_sources(args.query)
    query_paths, images = open_readable(queries, False)
    index, sims = neighbours(embeddings, model.embed(images), args.k + 1)
    rows = []
    for q, idx_row, sim_row in zip(query_paths, index, sims):
        found = [(int(i), float(s)) for i, s in zip(idx_row, sim_row) if paths[int(i)].resolve() != q.resolve()]
        for rank, (i, s) in enumerate(found[:args.k], start=1):
            rows.append({"query": str(q), "rank": rank, "path": str(paths[i]), "similarity": f"{s:.4f}"})
        print(f"{q}: " + ", ".join(f"{paths[i].name} ({s:.3f})" for i, s in found[:min(args.k, 5)]))
    atomic_write_csv(out / "neighbours.csv", rows)
    return out / "neighbours.csv"


def link_clusters(folder: Path, paths: list[Path], clusters: np.ndarray) -> Path:
    """clusters/<k>/: a link to each image of cluster k (numbered, so equal file names do not clash)."""
    for i, (path, c) in enumerate(zip(paths, clusters)):
        target = folder / str(int(c))
        target.mkdir(parents=True, exist_ok=True)
        link = target / f"{i:06d}_{path.name}"
        if not link.exists():
            try:
                os.symlink(path.resolve(), link)
            except OSError as e:
                raise CnnkitError(f"{link}: cannot make a link ({e.strerror}); drop --cluster-links (clusters.csv "
                                  "lists the same)") from None
    return folder


def write_map(out: Path, paths: list[Path], embeddings: np.ndarray, clusters: np.ndarray | None,
              args: argparse.Namespace) -> Path:
    """map.png: the collection in 2-D (t-SNE or UMAP), as thumbnails or points (coloured by cluster)."""
    from cnnkit.data.images import open_image
    from cnnkit.metrics.collection import draw_map, project_2d

    points = project_2d(embeddings, args.map, args.seed)
    images = None
    if args.map_style == "thumbnails":
        images = [open_image(p) for p in paths]
    atomic_write_csv(out / "map.csv", [{"path": str(p), "x": f"{x:.4f}", "y": f"{y:.4f}"}
                                       for p, (x, y) in zip(paths, points)])
    title = f"{len(paths)} images, {args.map}" + (f", {args.clusters} clusters" if clusters is not None else "")
    return draw_map(points, out / "map.png", images, clusters, title)


def add_embed_parser(p: argparse.ArgumentParser, bounded: Callable[..., Callable[[str], Any]]) -> None:
    """The flags of ``cnnkit embed`` (the common inference flags are added by main.py); ``bounded(kind, low,
    high)`` makes a range-checked argument type."""
    p.add_argument("sources", nargs="+", metavar="SOURCE", help="image files, folders (at any depth; mask and label "
                                                                "folders skipped) or globs")
    p.add_argument("--out", default="", help="output folder [default: runs/embed/exp, exp2, ...]")
    p.add_argument("--skip-bad", action="store_true", help="skip unreadable images with a warning")
    p.add_argument("--parquet", action="store_true", help="embeddings.parquet instead of embeddings.csv (pandas, "
                                                            "pyarrow)")
    p.add_argument("--query", nargs="+", default=[], metavar="IMAGE", help="images whose nearest neighbours in the "
                                                                           "collection to list (neighbours.csv)")
    p.add_argument("--k", type=bounded(int, 1), default=5, help="neighbours per query image")
    p.add_argument("--clusters", type=bounded(int, 0), default=0, help="k-means clusters (clusters.csv); 0 = none")
    p.add_argument("--cluster-links", action="store_true", help="also clusters/<k>/ folders of links to the images")
    p.add_argument("--duplicates", type=bounded(float, 0.0, 1.0), default=0.0, metavar="SIMILARITY",
                   help="list pairs at or above this cosine similarity (duplicates.csv), e.g. 0.95; 0 = none")
    p.add_argument("--map", default="", choices=("", "tsne", "umap"), help="a 2-D map of the collection (map.png)")
    p.add_argument("--map-style", default="points", choices=("points", "thumbnails"),
                   help="draw the map as points (coloured by cluster) or image thumbnails")
    p.add_argument("--seed", type=bounded(int, 0), default=0, help="seed of k-means and the map")

"""Extended Yale B: recognition of 10 people never seen in training, by cnnkit's recognize task against
a classifier's penultimate layer, a self-supervised trunk, raw pixels and Eigenfaces, side by side.

Protocol: the 38 people of the cropped Extended Yale B (64 grey 168x192 images each) are split, by a
seeded choice printed and saved, into 28 to train on and 10 held out whole; every method learns (or fits)
on the 28 only, and is scored on the 640 images of the 10 (`cnnkit.metrics.verification`):
  - verification over all pairs of those images, by cosine distance: ROC AUC, TAR at FAR 1% and 0.1%, EER;
  - rank-1 by enrolment: 5 images per person enrolled (seeded), every other image searched, its identity
    that of its nearest enrolled image.
The split is made as folders of symlinks: <work>/train28/<person>/*.png and <work>/test10/<person>/*.png.

Methods (``--methods``, comma-separated; all by default):
  ours        cnnkit.train(task="recognize") on train28 (it holds out whole identities of the 28 for its own
              validation and saves a distance threshold in the card); also the FAR and TAR on the 10 new
              people at that saved threshold, which is what a user of the model gets;
  classifier  cnnkit.train(task="classify"), embedded by its trunk's pooled output (the penultimate layer);
  ssl         cnnkit.train(task="pretrain") (no labels), embedded by its trunk;
  pixels      images resized to 48x42, flattened, centred on the train28 mean;
  eigenfaces  scikit-learn PCA (whiten=False) fitted on train28 at 48x42, embeddings the projections.
Each method's training wall time, per-epoch times and embedding time per image (batch 64, after a warm-up
batch, images already decoded) are recorded.

``--search-bench``: milliseconds per query of an exact search of 100 random unit vectors (k=5) in a gallery
of 100,000 random unit vectors of dimension 128, by numpy and by faiss (when installed), through
``cnnkit.recognition.index.VectorIndex`` where it exists.

Results are merged into ``--out`` (a JSON; each entry keeps its command line and date, so methods can be
run one at a time) with a log beside it (same name, .log), and printed as a markdown table.

    python benchmarks/recognize.py --data ../shared/datasets/faces-yaleb --epochs 20
    python benchmarks/recognize.py --methods pixels,eigenfaces
    python benchmarks/recognize.py --methods "" --search-bench
"""

from __future__ import annotations

import argparse
import csv
import json
import shlex
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, peak_rss_mb, reset_peak_rss  # noqa: E402
from recognize_search import search_bench, search_table  # noqa: E402

import cnnkit  # noqa: E402
from cnnkit.recognition.index import normalise  # noqa: E402

METHODS = ("ours", "classifier", "ssl", "pixels", "eigenfaces")
HELD_OUT = 10
ENROL = 5
PIXEL_SIZE = (42, 48)  # PIL's (width, height): the 168x192 faces at a quarter of their side
LOG: Path | None = None


def say(*parts: object) -> None:
    """Print, and append the line to the log."""
    line = " ".join(str(p) for p in parts)
    print(line, flush=True)
    if LOG is not None:
        with LOG.open("a") as f:
            f.write(line + "\n")


# ---------------------------------------------------------------------------------------------- the split
def make_split(data: Path, work: Path, seed: int) -> dict:
    """<work>/train28 and <work>/test10: one folder of symlinks per person; made afresh each run."""
    people = sorted(p.name for p in data.iterdir() if p.is_dir() and any(p.glob("*.png")))
    if len(people) <= HELD_OUT:
        raise SystemExit(f"{data}: {len(people)} people with PNG images; need more than {HELD_OUT}")
    held = sorted(np.random.default_rng(seed).choice(people, HELD_OUT, replace=False).tolist())
    parts = {"train": [p for p in people if p not in held], "test": held}
    names = {"train": f"train{len(parts['train'])}", "test": f"test{HELD_OUT}"}
    for part, who in parts.items():
        root = work / names[part]
        if root.exists():
            shutil.rmtree(root)
        for person in who:
            (root / person).mkdir(parents=True)
            for png in sorted((data / person).glob("*.png")):
                (root / person / png.name).symlink_to(png.resolve())
    return {"people": len(people), "held_out": held, "train_dir": str(work / names["train"]),
            "test_dir": str(work / names["test"]), "seed": seed}


def listing(root: Path) -> tuple[list[Path], np.ndarray, list[str]]:
    """The PNGs under root/<person>/, sorted, with integer labels and the people's names."""
    people = sorted(p.name for p in root.iterdir() if p.is_dir())
    paths, labels = [], []
    for i, person in enumerate(people):
        for png in sorted((root / person).glob("*.png")):
            paths.append(png)
            labels.append(i)
    return paths, np.asarray(labels, np.int64), people


def load_images(paths: list[Path]) -> list[Image.Image]:
    out = []
    for p in paths:
        with Image.open(p) as im:
            out.append(im.convert("L"))
    return out


# ---------------------------------------------------------------------------------------------- scoring
def score(embeddings: np.ndarray, labels: np.ndarray, seed: int, threshold: float | None = None) -> dict:
    """Verification over all pairs and rank-1 by enrolment, on unit-length embeddings; with ``threshold`` (a
    cosine distance: a pair at most this far apart is accepted) also the FAR and TAR there."""
    from cnnkit.metrics.verification import enrolment_rank1, pair_distances, retrieval_scores, verification_scores

    z = normalise(embeddings)
    distances, same = pair_distances(z, labels)
    distances, same = np.asarray(distances), np.asarray(same, bool)
    v = verification_scores(distances, same, fars=(0.01, 0.001))
    out = {k: float(v[k]) for k in ("roc_auc", "tar_far1", "tar_far01", "threshold_far1", "threshold_far01", "eer")}
    out.update({k: float(x) for k, x in enrolment_rank1(z, labels, per_identity=ENROL, seed=seed).items()})
    # leave-one-out retrieval among the test images (each against all the others): rank-1 and mAP, by cnnkit and
    # by numpy here (a cross-check: cnnkit's mAP went through torchmetrics, which drops scores <= 0)
    out.update({f"loo_{k}_cnnkit": float(x) for k, x in retrieval_scores(z, labels, ks=(1,), seed=seed).items()})
    out.update(leave_one_out(z, labels))
    out["pairs_genuine"], out["pairs_impostor"] = int(same.sum()), int((~same).sum())
    if threshold is not None:
        accepted = distances <= threshold
        out["saved_threshold"] = float(threshold)
        out["far_at_saved_threshold"] = float(accepted[~same].mean())
        out["tar_at_saved_threshold"] = float(accepted[same].mean())
    return out


def leave_one_out(z: np.ndarray, labels: np.ndarray) -> dict:
    """Each image searched among all the others by cosine distance: rank-1 and mAP (mean over the images of the
    average precision of their ranking)."""
    sims = z @ z.T
    np.fill_diagonal(sims, -np.inf)
    order = np.argsort(-sims, axis=1, kind="stable")[:, :-1]  # itself (at -inf) last, dropped
    hits = labels[order] == labels[:, None]
    ranks = np.arange(1, hits.shape[1] + 1)
    precision = np.cumsum(hits, axis=1) / ranks
    ap = (precision * hits).sum(1) / np.maximum(hits.sum(1), 1)
    keep = hits.any(1)
    return {"loo_rank1": float(hits[keep, 0].mean()), "loo_map": float(ap[keep].mean())}


def timed_embed(embed, images: list, batch: int = 64, repeats: int = 3) -> tuple[np.ndarray, float]:
    """Embeddings of ``images`` by ``embed(list) -> (N, D)`` in batches, after one warm-up batch; seconds per
    image, the best of ``repeats`` passes (on a shared machine the others measure its neighbours)."""
    embed(images[:batch])
    best, out = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        out = np.concatenate([np.asarray(embed(images[i:i + batch]), np.float32)
                              for i in range(0, len(images), batch)])
        best = min(best, time.perf_counter() - start)
    return out, best / len(images)


# ---------------------------------------------------------------------------------------------- methods
def epoch_times(run_dir: Path) -> list[float]:
    """Seconds of each epoch, from metrics.csv's cumulative ``time_s`` (empty when there is none)."""
    path = run_dir / "metrics.csv"
    if not path.exists():
        return []
    with path.open() as f:
        rows = list(csv.DictReader(f))
    cumulative = [float(r["time_s"]) for r in rows if r.get("time_s")]
    return [round(b - a, 2) for a, b in zip([0.0] + cumulative[:-1], cumulative)]


def last_metrics(run_dir: Path) -> dict:
    path = run_dir / "metrics.csv"
    if not path.exists():
        return {}
    with path.open() as f:
        rows = list(csv.DictReader(f))
    return {k: v for k, v in rows[-1].items() if k and v not in ("", None)} if rows else {}


def train_cnnkit(args: argparse.Namespace, method: str, split: dict, work: Path) -> tuple[cnnkit.Model, dict]:
    """Train one of the cnnkit methods on train28; its best checkpoint loaded, and how the training went."""
    task, epochs, extra = {"ours": ("recognize", args.epochs, {"loss": args.loss, **json.loads(args.ours)}),
                           "classifier": ("classify", args.epochs, {}),
                           "ssl": ("pretrain", args.ssl_epochs, {})}[method]
    name = {"ours": "recognize"}.get(method, method)
    reset_peak_rss()
    start = time.perf_counter()
    settings = dict(task=task, data=split["train_dir"], model=args.model, imgsz=args.imgsz, epochs=epochs,
                    seed=args.seed, project=str(work / "runs"), name=name, exist_ok=True, verbose=False, save_period=0)
    run = cnnkit.train(**{**settings, **extra})  # --ours may set the training seed apart from the split's
    seconds = time.perf_counter() - start
    run_dir = Path(run.run_dir)
    per_epoch = epoch_times(run_dir)
    info = {"task": task, "model": args.model, "imgsz": args.imgsz, "epochs": epochs, "epochs_run": run.epochs_run,
            "train_seconds": round(seconds, 1), "seconds_per_epoch": round(seconds / max(run.epochs_run, 1), 1),
            "epoch_seconds": per_epoch, "peak_mb": round(peak_rss_mb()), "run_dir": str(run_dir),
            "best": {k: float(v) for k, v in run.best.items()}, "last_epoch_metrics": last_metrics(run_dir), **extra}
    model = cnnkit.load(run_dir / "best.pt")
    return model, info


def method_cnnkit(args: argparse.Namespace, method: str, split: dict, work: Path, test: tuple) -> dict:
    model, info = train_cnnkit(args, method, split, work)
    say(method, "trained:", json.dumps({k: v for k, v in info.items() if k not in ("epoch_seconds",
                                                                                     "last_epoch_metrics")}))
    images, labels = test
    z, per_image = timed_embed(model.embed, images)
    threshold = None
    if method == "ours":
        threshold = model.meta.value("threshold", float("nan"))
        if not np.isfinite(threshold):
            say("ours: the model card holds no threshold (meta.extra keys:", sorted(model.meta.extra), ")")
            threshold = None
    return {**info, "dim": int(z.shape[1]), "embed_seconds_per_image": per_image,
            **score(z, labels, args.seed, threshold)}


def method_classic(args: argparse.Namespace, method: str, train: tuple, test: tuple) -> dict:
    """Raw pixels or Eigenfaces: fitted on the train28 images at 48x42, cosine distance."""
    def pixels(images: list[Image.Image]) -> np.ndarray:
        return np.stack([np.asarray(im.resize(PIXEL_SIZE, Image.BILINEAR), np.float32).ravel() / 255.0
                         for im in images])

    start = time.perf_counter()
    x_train = pixels(train[0])
    if method == "pixels":
        mean = x_train.mean(0)

        def embed(images: list[Image.Image]) -> np.ndarray:
            return pixels(images) - mean
        extra = {}
    else:
        from sklearn.decomposition import PCA

        pca = PCA(n_components=args.pca_components, whiten=False, random_state=args.seed).fit(x_train)

        def embed(images: list[Image.Image]) -> np.ndarray:
            return pca.transform(pixels(images))
        extra = {"pca_components": args.pca_components,
                 "explained_variance": round(float(pca.explained_variance_ratio_.sum()), 4)}
    seconds = time.perf_counter() - start
    z, per_image = timed_embed(embed, test[0])
    return {"size_wh": list(PIXEL_SIZE), "train_seconds": round(seconds, 2), "train_images": len(train[0]),
            **extra, "dim": int(z.shape[1]), "embed_seconds_per_image": per_image, **score(z, test[1], args.seed)}


# ---------------------------------------------------------------------------------------------- report
def table(methods: dict) -> str:
    head = ("| method | dim | train s | s/epoch | ROC AUC | TAR@FAR1% | TAR@FAR0.1% | EER | rank-1 (5 enrolled) "
            "| LOO mAP | embed ms/img |")
    lines = [head, "|" + "---|" * head.count(" | ") + "---|"]
    for name in METHODS:
        r = methods.get(name)
        if r is None:
            continue
        spe = f"{r['seconds_per_epoch']:.1f}" if "seconds_per_epoch" in r else "-"
        lines.append(f"| {name} | {r['dim']} | {r['train_seconds']:.1f} | {spe} | {r['roc_auc']:.4f} | "
                     f"{r['tar_far1']:.3f} | {r['tar_far01']:.3f} | {r['eer']:.3f} | {r['enrol_rank1']:.3f} | "
                     f"{r['loo_map']:.3f} | {1000 * r['embed_seconds_per_image']:.2f} |")
    ours = methods.get("ours", {})
    if "saved_threshold" in ours:
        lines.append(f"\nours at its saved threshold {ours['saved_threshold']:.4f} (chosen on its validation "
                     f"identities): FAR {ours['far_at_saved_threshold']:.4%}, TAR {ours['tar_at_saved_threshold']:.3f}"
                     " on the 10 new people")
    return "\n".join(lines)


def main() -> None:
    global LOG
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default="../shared/datasets/faces-yaleb", help="one folder of PNGs per person")
    p.add_argument("--methods", default=",".join(METHODS), help=f"comma-separated, of {', '.join(METHODS)}")
    p.add_argument("--epochs", type=int, default=20, help="epochs of ours and the classifier")
    p.add_argument("--ssl-epochs", type=int, default=20, help="epochs of self-supervised pretraining")
    p.add_argument("--model", default="resnet18")
    p.add_argument("--imgsz", type=int, default=64)
    p.add_argument("--loss", default="arcface", help="ours: arcface, cosface, multisimilarity or triplet")
    p.add_argument("--ours", default="{}", help='ours: more training options as JSON, e.g. \'{"augment": "standard"}\'')
    p.add_argument("--pca-components", type=int, default=100)
    p.add_argument("--work", default="/tmp/recognize_bench", help="the split's symlinks and the runs go here")
    p.add_argument("--seed", type=int, default=0, help="the held-out people, the enrolled images, training")
    p.add_argument("--search-bench", action="store_true", help="also time search in 100,000 vectors")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", default=str(Path(__file__).resolve().parent / "recognize.json"))
    args = p.parse_args()
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = sorted(set(methods) - set(METHODS))
    if unknown:
        p.error(f"--methods: unknown {', '.join(unknown)}; choose from {', '.join(METHODS)}")
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    LOG = out.with_suffix(".log")
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    command = "python " + " ".join(shlex.quote(a) for a in sys.argv)
    date = time.strftime("%Y-%m-%d %H:%M")
    say(f"\n# {date}  {command}\n# {machine()}")

    split = make_split(Path(args.data), work, args.seed)
    say(f"held out ({HELD_OUT} of {split['people']}, seed {args.seed}): {' '.join(split['held_out'])}")
    report: dict = json.loads(out.read_text()) if out.exists() else {}
    if report.get("split", {}).get("held_out") not in (None, split["held_out"]):
        say(f"{out}: its held-out people differ from this run's; starting it afresh")
        report = {}
    report.update({"machine": machine(), "date": date, "split": split,
                   "protocol": f"train on {split['people'] - HELD_OUT} people, score on {HELD_OUT} never seen: "
                               f"verification over all pairs (cosine distance), rank-1 with {ENROL} images per "
                               "person enrolled"})
    report.setdefault("methods", {})
    stamp = {"command": command, "date": date, "machine": machine()}

    if methods:
        test_paths, test_labels, _ = listing(Path(split["test_dir"]))
        test = (load_images(test_paths), test_labels)
        say(f"test: {len(test_paths)} images of {len(np.unique(test_labels))} people")
        train = None
        for method in methods:
            if method in ("pixels", "eigenfaces"):
                if train is None:
                    train_paths, train_labels, _ = listing(Path(split["train_dir"]))
                    train = (load_images(train_paths), train_labels)
                result = method_classic(args, method, train, test)
            else:
                result = method_cnnkit(args, method, split, work, test)
            report["methods"][method] = {**result, **stamp}
            say(method, json.dumps({k: v for k, v in result.items()
                                    if k not in ("epoch_seconds", "last_epoch_metrics", "best")}))
            out.write_text(json.dumps(report, indent=2))
    if args.search_bench:
        report["search"] = {**search_bench(args.seed), **stamp}
        out.write_text(json.dumps(report, indent=2))
    out.write_text(json.dumps(report, indent=2))
    say("")
    say(table(report["methods"]))
    if "search" in report:
        say("")
        say(search_table(report["search"]))
    say(f"\nwritten: {out} (log {LOG})")


if __name__ == "__main__":
    main()

"""The README's picture of `cnnkit recognize`: faces of people never seen in training, searched in a gallery
of those people, each next to the nearest enrolled image of its top-k identities.

The gallery holds ``--enrol`` images of each person of ``--test`` (seeded choice), made with
``cnnkit.enrol``; ``--queries`` different people (seeded) each give one image that is not enrolled, searched
with ``cnnkit.search``. All queries but the last are a random such image; the last is a random one of the
darkest quarter of that person's non-enrolled images (a hard one, lit from the side or from behind).

    python benchmarks/recognize_figure.py     (after benchmarks/recognize.py, whose --work it reads)
"""

from __future__ import annotations

import argparse
import io
import tempfile
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

import cnnkit  # noqa: E402
from cnnkit.recognition.identify import embed  # noqa: E402

RIGHT, WRONG = "#1a7f37", "#c62828"  # green: the true person; red: someone else


def people_of(test: Path) -> dict[str, list[Path]]:
    """Each person's images: one folder of PNGs per person, sorted."""
    out = {p.name: sorted(p.glob("*.png")) for p in sorted(test.iterdir()) if p.is_dir()}
    return {name: images for name, images in out.items() if images}


def brightness(path: Path) -> float:
    return float(np.asarray(Image.open(path).convert("L"), np.float32).mean())


def choose(people: dict[str, list[Path]], enrol: int, queries: int, seed: int
           ) -> tuple[dict[str, list[Path]], list[tuple[str, Path]]]:
    """The enrolled images of every person, and (person, image) queries of different people, none enrolled;
    the last query from the darkest quarter of its person's images that are not enrolled."""
    rng = np.random.default_rng(seed)
    enrolled = {name: [images[i] for i in sorted(rng.choice(len(images), enrol, replace=False))]
                for name, images in people.items()}
    who = rng.choice(sorted(people), queries, replace=False)
    chosen = []
    for i, name in enumerate(who):
        rest = [p for p in people[name] if p not in enrolled[name]]
        if i == len(who) - 1:  # the hard one
            rest = sorted(rest, key=brightness)[: max(1, len(rest) // 4)]
        chosen.append((str(name), rest[int(rng.integers(len(rest)))]))
    return enrolled, chosen


def show(ax: plt.Axes, path: Path) -> None:
    ax.imshow(np.asarray(Image.open(path).convert("L")), cmap="gray", vmin=0, vmax=255)
    ax.set_xticks([])
    ax.set_yticks([])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", default="/tmp/recognize_bench/runs/recognize/recognize/best.pt")
    parser.add_argument("--test", default="/tmp/recognize_bench/test10", help="one folder of PNGs per held-out person")
    parser.add_argument("--enrol", type=int, default=5, help="images enrolled per person")
    parser.add_argument("--queries", type=int, default=4, help="queries (different people), one row each")
    parser.add_argument("--k", type=int, default=3, help="nearest identities shown per query")
    parser.add_argument("--seed", type=int, default=0, help="the enrolled images and the queries")
    parser.add_argument("--out", default="docs/recognize_search.png")
    parser.add_argument("--dpi", type=int, default=90)
    args = parser.parse_args()

    model = cnnkit.load(args.weights)
    threshold = model.meta.value("threshold", None)
    people = people_of(Path(args.test))
    enrolled, queries = choose(people, args.enrol, args.queries, args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        gallery = Path(tmp) / "faces.gallery"
        for name, images in enrolled.items():
            cnnkit.enrol(model, gallery, name, [str(p) for p in images])
        found = cnnkit.search(model, gallery, [str(p) for _, p in queries], k=args.k)
    # the enrolled image of each identity nearest to the query, by the same unit vectors as the gallery's
    vectors = {name: embed(model, [str(p) for p in images]) for name, images in enrolled.items()}

    fig, axes = plt.subplots(len(queries), 1 + args.k, figsize=(2.0 * (1 + args.k), 2.55 * len(queries)),
                             squeeze=False)
    for row, ((truth, query), result) in zip(axes, zip(queries, found)):
        show(row[0], query)
        said = result["identity"]
        q = np.asarray(result["embedding"], np.float32)
        nearest = {name: float((1.0 - v @ q).min()) for name, v in vectors.items()}
        rank = sorted(nearest, key=nearest.get).index(truth) + 1
        note = f"identified as: {said}"
        if rank > len(result["matches"]):  # the true person is not drawn: say where it came
            note += f"\n{truth} itself: d={nearest[truth]:.2f}, #{rank}"
        row[0].set_title(f"query: {truth}", fontsize=10, fontweight="bold")
        row[0].set_xlabel(note, fontsize=9,
                          color=RIGHT if said == truth else (WRONG if said != "unknown" else "black"))
        for ax, hit in zip(row[1:], result["matches"]):
            d = 1.0 - vectors[hit["name"]] @ q
            show(ax, enrolled[hit["name"]][int(d.argmin())])
            colour = RIGHT if hit["name"] == truth else WRONG
            ax.set_title(f"{hit['name']}  d={hit['distance']:.2f}", fontsize=10, color=colour)
            ax.set_xlabel("match" if hit["match"] else "no match", fontsize=9,
                          fontweight="bold" if hit["match"] else "normal")
            for side in ax.spines.values():
                side.set_edgecolor(colour)
                side.set_linewidth(2.5)
        for ax in row[1 + len(result["matches"]):]:
            ax.axis("off")
    limit = f"{threshold:.3g}" if threshold is not None else "(none saved)"
    fig.suptitle(f"Nearest enrolled identities of people never seen in training (Extended Yale B, {args.enrol} "
                 f"images enrolled each;\nthreshold d \u2264 {limit} from the model card). Queries: "
                 f"{len(queries)} different people and images not enrolled, drawn with seed {args.seed};\nthe last "
                 "from the darkest quarter of its person's images. Green: the true person; red: someone else.",
                 fontsize=9.5, y=1 - 0.08 / fig.get_figheight(), va="top")
    height = fig.get_figheight()
    fig.subplots_adjust(left=0.02, right=0.98, bottom=0.45 / height, top=1 - 0.95 / height, wspace=0.08,
                        hspace=0.32)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    drawn = io.BytesIO()
    fig.savefig(drawn, dpi=args.dpi)
    # grey faces and a few colours: a 256-colour palette keeps the file small at no visible cost
    Image.open(drawn).convert("RGB").quantize(256).save(out, optimize=True)
    for (truth, query), result in zip(queries, found):
        hits = ", ".join(f"{h['name']} {h['distance']:.3f}{' match' if h['match'] else ''}" for h in result["matches"])
        print(f"{truth} {query.name}: identity {result['identity']}; {hits}")
    print(f"{out}: {out.stat().st_size / 1024:.0f} KB, threshold {threshold}")


if __name__ == "__main__":
    main()

"""``cnnkit verify``, ``cnnkit gallery add|remove|list`` and ``cnnkit search``: recognition by embedding with a
model from ``cnnkit train recognize`` (a checkpoint, or its .onnx / TorchScript export)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cnnkit.data.images import iter_sources, open_readable, set_max_pixels
from cnnkit.errors import CnnkitError
from cnnkit.files import atomic_write_bytes, atomic_write_csv, json_bytes

EXAMPLES = {
    "verify": """examples:
  cnnkit verify --weights runs/recognize/exp/best.pt a.jpg b.jpg      (same or not, the distance, the threshold)
  cnnkit verify --weights face.onnx a.jpg b.jpg --threshold 0.45""",
    "gallery": """examples:
  cnnkit gallery add people.npz --weights best.pt --name alice alice/*.jpg   (enrol: several images each)
  cnnkit gallery list people.npz
  cnnkit gallery remove people.npz --name alice""",
    "search": """examples:
  cnnkit search --weights best.pt --gallery people.npz queries/          (top-5 identities, "unknown" beyond
                                                                          the threshold; search.csv with --out)
  cnnkit search --weights best.pt --gallery people.npz q.jpg --k 1 --json""",
}
THRESHOLD_HELP = ("same identity when the cosine distance is at most this [default: the threshold saved in the "
                  "model card, chosen at training for its target false accept rate]")
FORCE_HELP = "compare images far from the training images in size or colour (refused by default: their vectors " \
             "mean little)"


def add_recognition_parsers(add: Callable[..., argparse.ArgumentParser], bounded: Callable) -> None:
    """The parsers of verify, gallery and search (``add(name, help)`` makes a subcommand's parser)."""
    p = add("verify", "are two images the same identity? (a model from `cnnkit train recognize`)")
    _model_flags(p, bounded)
    p.add_argument("images", nargs=2, metavar="IMAGE", help="the two images to compare")
    p.add_argument("--threshold", type=bounded(float, 0.0, 2.0), default=None, help=THRESHOLD_HELP)
    p.add_argument("--json", action="store_true", help="print the answer as JSON")

    p = add("gallery", "enrol identities into a gallery file, remove them, list them")
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")  # parsers of p's own class

    def action(name: str, help_text: str) -> argparse.ArgumentParser:
        q = actions.add_parser(name, help=help_text, description=help_text, epilog=EXAMPLES["gallery"],
                               formatter_class=argparse.RawDescriptionHelpFormatter)
        q.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show full tracebacks")
        q.add_argument("--quiet", action="store_true", default=argparse.SUPPRESS, help="no progress bars")
        return q

    a = action("add", "enrol images of one identity (made when the gallery file is missing)")
    a.add_argument("gallery", help="the gallery file (.npz)")
    _model_flags(a, bounded)
    a.add_argument("--name", required=True, help="the identity's name")
    a.add_argument("images", nargs="+", metavar="IMAGE", help="image files, folders or globs of that identity")
    r = action("remove", "remove an identity and all its vectors")
    r.add_argument("gallery", help="the gallery file (.npz)")
    r.add_argument("--name", required=True, help="the identity to remove")
    s = action("list", "the enrolled identities and how many images each")
    s.add_argument("gallery", help="the gallery file (.npz)")
    s.add_argument("--json", action="store_true", help="print the list as JSON")

    p = add("search", "the nearest enrolled identities of each image in a gallery")
    _model_flags(p, bounded)
    p.add_argument("--gallery", required=True, help="a gallery file made by `cnnkit gallery add` with this model")
    p.add_argument("images", nargs="+", metavar="IMAGE", help="image files, folders or globs")
    p.add_argument("--k", type=bounded(int, 1), default=5, help="identities listed per image")
    p.add_argument("--threshold", type=bounded(float, 0.0, 2.0), default=None, help=THRESHOLD_HELP)
    p.add_argument("--out", default="", help="write search.csv and search.json into this folder")
    p.add_argument("--json", action="store_true", help="print the answers as JSON")
    p.add_argument("--skip-bad", action="store_true", help="skip unreadable images with a warning")


def count(n: int, one: str, many: str = "") -> str:
    """'1 image', '2 images'."""
    return f"{n} {one if n == 1 else many or one + 's'}"


def _model_flags(p: argparse.ArgumentParser, bounded: Callable) -> None:
    p.add_argument("--weights", required=True, help="a recognition checkpoint (best.pt), or its .onnx or "
                                                    "TorchScript export")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N, N (a CUDA index) or mps")
    p.add_argument("--force", action="store_true", help=FORCE_HELP)
    p.add_argument("--max-pixels", type=bounded(int, 1), default=None,
                   help="largest image read (pixels, from its header); larger is refused")


def _load(args: argparse.Namespace) -> Any:
    from cnnkit.api import load
    from cnnkit.recognition.identify import check_model

    if args.max_pixels:
        set_max_pixels(args.max_pixels)
    model = load(args.weights, device=args.device)
    check_model(model, args.weights)
    return model


def _images(sources: list[str], skip_bad: bool = False) -> tuple[list[Path], list]:
    paths = iter_sources(sources)
    if not paths:
        raise CnnkitError(f"{' '.join(sources)}: no images found; pass image files, folders or globs")
    kept, images = open_readable(paths, skip_bad)
    if not images:
        raise CnnkitError("no readable images")
    return kept, images


def cmd_verify(args: argparse.Namespace) -> int:
    from cnnkit.recognition.identify import verify

    model = _load(args)
    found = [iter_sources([source]) for source in args.images]  # each on its own: a file given twice is two images
    if any(len(f) != 1 for f in found):
        raise CnnkitError(f"{' '.join(args.images)}: verify compares exactly two image files; give two files, not "
                          "folders or globs")
    paths, images = open_readable([f[0] for f in found], skip_bad=False)
    if len(images) != 2:
        raise CnnkitError(f"{' '.join(args.images)}: {len(images)} images; verify compares exactly two files")
    answer = verify(model, images[0], images[1], args.threshold, args.force, names=[str(p) for p in paths])
    if args.json:
        print(json_bytes({"a": str(paths[0]), "b": str(paths[1]), **answer}).decode())
        return 0
    verdict = "same identity" if answer["same"] else "different identities"
    print(f"{verdict}: cosine distance {answer['distance']:.4f} {'<=' if answer['same'] else '>'} threshold "
          f"{answer['threshold']:.4f}")
    return 0


def cmd_gallery(args: argparse.Namespace) -> int:
    from cnnkit.recognition.gallery import Gallery

    if args.action == "add":
        from cnnkit.recognition.identify import enrol

        model = _load(args)
        paths, images = _images(args.images)
        done = enrol(model, args.gallery, args.name, images, [str(p) for p in paths], args.force)
        print(f"{args.gallery}: enrolled {count(len(paths), 'image')} of '{done['name']}' ({done['added']} now); "
              f"{count(done['identities'], 'identity', 'identities')}, {count(done['vectors'], 'vector')}")
        return 0
    gallery = Gallery.load(args.gallery)
    if args.action == "remove":
        removed = gallery.remove(args.name)
        gallery.save(args.gallery)
        print(f"{args.gallery}: removed '{args.name}' ({count(removed, 'vector')}); "
              f"{count(len(gallery.names), 'identity', 'identities')} left")
        return 0
    rows = gallery.identities()
    if args.json:
        print(json_bytes({"gallery": str(args.gallery), "model": gallery.model, "threshold": gallery.threshold,
                          "identities": [{"name": n, "images": c} for n, c in rows]}).decode())
        return 0
    threshold = "none saved" if gallery.threshold is None else f"{gallery.threshold:.4f}"
    print(f"{args.gallery}: {count(len(rows), 'identity', 'identities')}, {count(len(gallery), 'vector')} (model "
          f"{gallery.model}, threshold {threshold})")
    for name, enrolled in rows:
        print(f"  {name}: {enrolled}")
    return 0


def cmd_search(args: argparse.Namespace) -> int:
    from cnnkit.recognition.identify import open_gallery, search

    model = _load(args)
    gallery = open_gallery(model, args.gallery)
    paths, images = _images(args.images, args.skip_bad)
    answers = search(model, gallery, images, args.k, args.threshold, [str(p) for p in paths], args.force)
    records = [{"path": str(p), "identity": a["identity"], "matches": a["matches"]} for p, a in zip(paths, answers)]
    if args.out:
        _write_search(Path(args.out), records)
    if args.json:
        print(json_bytes(records).decode())
        return 0
    for record in records:
        nearest = ", ".join(f"{m['name']} {m['distance']:.3f}" for m in record["matches"])
        print(f"{record['path']}: {record['identity']}  ({nearest})")
    if args.out:
        print(f"wrote {args.out}: search.csv, search.json")
    return 0


def _write_search(out: Path, records: list[dict[str, Any]]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    rows = [{"path": r["path"], "identity": r["identity"],
             "nearest": r["matches"][0]["name"] if r["matches"] else "",
             "distance": f"{r['matches'][0]['distance']:.6f}" if r["matches"] else "",
             "matches": ";".join(f"{m['name']}:{m['distance']:.4f}" for m in r["matches"])} for r in records]
    atomic_write_csv(out / "search.csv", rows, ["path", "identity", "nearest", "distance", "matches"])
    atomic_write_bytes(out / "search.json", json_bytes(records, indent=2))

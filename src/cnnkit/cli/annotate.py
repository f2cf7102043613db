"""``cnnkit annotate FOLDER``: a local page to segment a folder's images by clicks (a click model from
``cnnkit train click``, or cnnkit.grow's seeded method without one), written as a data set ``cnnkit train``
reads."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cnnkit.errors import CnnkitError, require

EXAMPLES = """examples:
  cnnkit annotate photos/                      (seeded method, no model; masks into photos_annotated/)
  cnnkit annotate cells/ --weights runs/click/exp/best.pt --classes nucleus --layout instance --out cells_data
  cnnkit annotate street/ --classes car,person,road --port 8011 --no-browser
  cnnkit train segment --data photos_annotated --model unet_basic     (then train on what was annotated)
on the page: left click on the object, right click off it; Enter accepts, Ctrl+Z undoes, N/P next/previous"""


def add_annotate_parser(add: Callable[[str, str], argparse.ArgumentParser],
                        bounded: Callable[..., Callable[[str], Any]]) -> None:
    """The ``annotate`` subcommand's parser (``add(name, help)`` makes a subcommand's parser)."""
    p = add("annotate", "segment a folder's images by clicks on a local web page (left click: on the object, right "
                        "click: not); writes images/, masks/ and classes.csv for cnnkit train segment or instance")
    p.epilog = EXAMPLES
    p.add_argument("folder", metavar="FOLDER", help="a folder of images to annotate")
    p.add_argument("--weights", default=None, help="a click model from `cnnkit train click` (best.pt) [default: "
                                                   "cnnkit segment's seeded method, no model: slower, ~1-3 s a click]")
    p.add_argument("--out", default="", help="the data set written, continued when it exists [default: "
                                             "FOLDER_annotated beside FOLDER]")
    p.add_argument("--classes", default=None, help="comma-separated class names offered on the page [default: "
                                                   "object; an --out annotated before keeps its classes, and new "
                                                   "names may follow them]")
    p.add_argument("--layout", choices=("segment", "instance"), default="segment",
                   help="masks of class numbers (segment) or of object ids with each one's class (instance)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (0.0.0.0 exposes the images and masks "
                                                       "to the network)")
    p.add_argument("--port", type=bounded(int, 1, 65535), default=8010, help="TCP port")
    p.add_argument("--device", default="auto", help="--weights: auto, cpu, cuda, cuda:N or mps")
    p.add_argument("--no-browser", action="store_true", help="do not open the page in a web browser")


def parse_classes(text: str) -> list[str]:
    """'a, b,c' -> ['a', 'b', 'c']; CnnkitError for none, a repeated name or 'background' (class 0 already)."""
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise CnnkitError(f"--classes {text!r}: no class names; give them comma-separated, such as --classes cat,dog")
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise CnnkitError(f"--classes {text}: {', '.join(twice)} named twice; name each class once")
    if "background" in names:
        raise CnnkitError(f"--classes {text}: 'background' is class 0 of every mask already; name only the objects")
    return names


def check_folder(folder: Path) -> None:
    """One line for a FOLDER that is missing, not a folder, or without images (directly in it, as the store
    reads it), before a model loads."""
    from cnnkit.data.walk import list_images

    if not folder.exists():
        raise CnnkitError(f"{folder}: no such folder; give a folder of images to annotate")
    if not folder.is_dir():
        raise CnnkitError(f"{folder}: not a folder; give the folder that holds the images")
    if not list_images(folder, say=False)[0]:
        raise CnnkitError(f"{folder}: no images (.png, .jpg, .tif, ...) directly in it; give the folder that holds "
                          "the images")


def default_out(folder: Path) -> Path:
    """FOLDER_annotated, beside FOLDER."""
    folder = folder.resolve()
    return folder.with_name(folder.name + "_annotated")


def cmd_annotate(args: argparse.Namespace) -> int:
    for module in ("fastapi", "uvicorn"):
        require(module, "serve", "cnnkit annotate")
    from cnnkit.cli.deploy import check_address

    folder = Path(args.folder)
    out = Path(args.out) if args.out else default_out(folder)
    check_folder(folder)
    check_address(args.host, args.port)  # before a model loads or anything is written
    from cnnkit.annotate import AnnotationStore, load_clicker
    from cnnkit.annotate.store import hold_folder
    from cnnkit.serve.annotate import serve_annotate

    if args.classes is not None:
        classes = parse_classes(args.classes)
    else:  # an --out annotated before keeps its own classes (the store's), a new one gets "object"
        classes = [] if (out / "classes.csv").is_file() else ["object"]
    clicker = load_clicker(args.weights, device=args.device)
    lock = hold_folder(out)  # held while serving: a second server on this --out is refused
    try:
        store = AnnotationStore(folder, out, classes, args.layout)  # refuses an --out of another layout or classes
        serve_annotate(store, clicker, store.classes, args.host, args.port, browser=not args.no_browser)
    finally:
        if lock is not None:
            lock.close()
    return 0

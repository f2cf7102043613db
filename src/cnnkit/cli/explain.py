"""``cnnkit explain``: heatmaps of what a checkpoint looks at, per image and target (``cnnkit.explain``)."""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cnnkit.cli.flags import add_option_flags
from cnnkit.data.images import DEFAULT_MAX_PIXELS, iter_sources, open_image, set_max_pixels
from cnnkit.errors import CnnkitError
from cnnkit.files import atomic_write_csv, next_free
from cnnkit.options import make_options, option_infos

EXAMPLES = """examples:
  cnnkit explain --weights runs/classify/exp/best.pt photo.jpg         (Grad-CAM of the top class)
  cnnkit explain --weights best.pt photos/ --topk 3 --method gradcam++ --out maps
  cnnkit explain --weights best.pt cat.jpg --target dog --method occlusion   (why not 'dog'?)
  cnnkit explain --weights best.pt cat.jpg --layer layer3            (names as `cnnkit summary resnet18` prints)
  cnnkit explain --weights runs/segment/exp/best.pt street.png --target car   (the pixels predicted as car)
  cnnkit explain --weights runs/instance/exp/best.pt cells/ --score-thresh 0.5  (a map per detection)
  cnnkit explain --weights runs/recognize/exp/best.pt a.jpg b.jpg   (what makes the two faces near)
  cnnkit explain --weights best.pt photo.jpg --features             (also stage activations and filters)

explanations.csv: one row per map: image, rank (the target's place among the image's targets: 0 = the top
class, the first predicted class or detection), label, method, layer, overlay (.png) and map (.npy) paths."""
OWN = {"topk"}  # prediction options that mean something else here (maps made), not passed on
FIELDS = ["image", "rank", "label", "method", "layer", "overlay", "map"]


def add_explain_parser(p: argparse.ArgumentParser, bounded: Callable[..., Callable[[str], float]]) -> None:
    """The flags of ``cnnkit explain`` (``bounded``: main's range-checked argparse types)."""
    from cnnkit.explain import METHODS

    p.epilog = EXAMPLES
    p.add_argument("--weights", required=True, help="a cnnkit checkpoint (best.pt / last.pt, or its run folder); an "
                                                    "exported file keeps no gradients or layers")
    p.add_argument("sources", nargs="+", metavar="SOURCE", help="image files, folders or globs")
    p.add_argument("--method", default="gradcam", choices=METHODS,
                   help="gradcam, gradcam++, scorecam (slow: one pass per channel of the layer) at a layer; "
                        "occlusion, ig (integrated gradients) on the pixels [default: gradcam]")
    p.add_argument("--target", default="", help="a class name or index to explain [default: the top --topk classes "
                                                "(classify), the predicted classes (segment), each detection]")
    p.add_argument("--layer", default="", help="the layer the CAM methods look at, named as `cnnkit summary MODEL` "
                                               "prints it [default: the last stage of the encoder whose map is at "
                                               "least 7 px on its shorter side at the image's working size, else "
                                               "the stage with the largest map]")
    p.add_argument("--reference", default="", metavar="IMAGE",
                   help="recognize: the image each SOURCE is compared with [default with two SOURCE images: each "
                        "against the other]")
    p.add_argument("--out", default="", help="output folder [default: runs/explain, explain2, ...]")
    p.add_argument("--features", action="store_true", help="also write each stage's activations and the first "
                                                           "layer's filters (cnnkit.explain.features)")
    p.add_argument("--skip-bad", action="store_true", help="skip unreadable images with a warning")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N, N (a CUDA index) or mps")
    p.add_argument("--max-pixels", type=bounded(int, 1), default=DEFAULT_MAX_PIXELS,
                   help="largest image read (pixels, from its header); larger is refused as a possible "
                        "decompression bomb")
    add_option_flags(p)
    for action in p._actions:  # classify's --topk (classes reported) here means maps made, 1 unless given
        if action.dest == "topk":
            action.help = "classify: maps for the K most probable classes [default: 1]"


def _task_options(args: argparse.Namespace, model: Any) -> Any:
    """The task's prediction options given as flags, checked against the model's task (one line naming a flag
    it does not take)."""
    from cnnkit.explain.core import refuse_unhonoured
    from cnnkit.tasks import get_spec, task_names

    every = {i.name for t in task_names() for i in option_infos(get_spec(t).options)}
    own = {i.name for i in option_infos(model.options_type)}
    for key in sorted(OWN & set(vars(args)) - own):  # taken here, not passed on: checked here
        owners = [t for t in task_names() if key in {i.name for i in option_infos(get_spec(t).options)}]
        flag = "--" + key.replace("_", "-")
        raise CnnkitError(f"{flag}: an option of {', '.join(owners)}, not {model.meta.task}; drop {flag}")
    given = {k: v for k, v in vars(args).items() if k in every and k not in OWN}
    refuse_unhonoured(given, flags=True)
    return make_options(model.options_type, given, model.meta.task, model.runtime, flags=True)


def _references(args: argparse.Namespace, task: str, paths: list[Path]) -> list[Any]:
    """The reference image of each source: --reference for all, or for a recognition model given two images and
    no --reference, each the other; None each for the tasks that compare with nothing."""
    if task != "recognize":
        if args.reference:
            raise CnnkitError(f"--reference {args.reference}: only a recognition model compares an image with a "
                              f"reference; this is a {task} model, so drop --reference")
        return [None] * len(paths)
    if args.reference:
        return [open_image(args.reference)] * len(paths)
    if len(paths) == 2:
        return [open_image(paths[1]), open_image(paths[0])]
    raise CnnkitError(f"--reference: a recognition model explains what makes an image near another; give "
                      f"--reference IMAGE, or exactly two images to explain each against the other (got {len(paths)})")


def cmd_explain(args: argparse.Namespace) -> int:
    from cnnkit.loading import is_torchscript, load

    set_max_pixels(args.max_pixels)
    weights = Path(args.weights)
    if weights.suffix.lower() in (".onnx", ".torchscript") or (weights.is_file() and is_torchscript(weights)):
        raise CnnkitError(f"{args.weights}: explanations need the PyTorch checkpoint (best.pt) the export was made "
                          "from: gradients and layers are not in an exported file")
    model = load(args.weights, args.device)
    options = _task_options(args, model)
    paths = iter_sources(args.sources)
    references = _references(args, model.meta.task, paths)
    out = Path(args.out) if args.out else next_free(Path("runs") / "explain")
    inside = next((p for p in paths if p.resolve().is_relative_to(out.resolve())), None)
    if inside is not None:  # overlays next to the inputs would be read as inputs by the next run
        raise CnnkitError(f"--out {out}: holds input images (such as {inside}); write the explanations to another "
                          "folder")
    made = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    try:
        return _explain_all(model, paths, references, options, out, args)
    except Exception:
        if made and not any(out.iterdir()):  # a failed run leaves no empty folder (the next is not explain2)
            out.rmdir()
        raise


def _explain_all(model: Any, paths: list[Path], references: list[Any], options: Any, out: Path,
                 args: argparse.Namespace) -> int:
    """Each image's maps (and features) into ``out``; explanations.csv lists the maps, also when an image
    fails midway (the maps before it are kept and listed; then the error)."""
    from cnnkit.explain.core import chosen_layer

    start, stems, state = time.perf_counter(), _stems(paths), {"maps": True, "features": 0, "done": 0}
    rows: list[dict] = []
    layer = chosen_layer(model.module, args.method, args.layer)  # checked once, before any image
    try:
        for path, reference, stem in zip(paths, references, stems):
            _explain_one(model, path, reference, stem, layer, options, out, args, rows, state)
    except BaseException:
        if rows:  # the maps written so far stay listed
            atomic_write_csv(out / "explanations.csv", rows, fields=FIELDS)
        raise
    if state["maps"]:
        atomic_write_csv(out / "explanations.csv", rows, fields=FIELDS)
    done, skipped = state["done"], len(paths) - state["done"]
    count = f"{done} image{'' if done == 1 else 's'}" + (f" ({skipped} skipped)" if skipped else "")
    what = (["explanations.csv, overlays (.png) and maps (.npy)"] if state["maps"] else []) + (
        ["features"] if state["features"] else [])
    print(f"{count} in {time.perf_counter() - start:.1f}s; {' and '.join(what) or 'nothing written'} in {out}")
    return 0


def _explain_one(model: Any, path: Path, reference: Any, stem: str, layer: str, options: Any, out: Path,
                 args: argparse.Namespace, rows: list[dict], state: dict) -> None:
    """One image's files, its rows appended to ``rows``; ``state``: whether maps are still made (a model with
    nothing to explain gives features only) and how many feature files were written."""
    from cnnkit.engine.task import ExplainRequest
    from cnnkit.explain.core import explain_images
    from cnnkit.log import LOGGER

    try:
        image = open_image(path)
    except CnnkitError as e:
        if not args.skip_bad:
            raise
        from cnnkit.data.images import as_skipped

        LOGGER.warning("warning: %s", as_skipped(str(e)))
        return
    state["done"] += 1
    features: list[Path] = []
    if args.features:
        from cnnkit.explain.features import write_features

        features = write_features(model.module, image, out, stem)
        state["features"] += len(features)
    if state["maps"]:
        request = ExplainRequest(target=args.target, topk=getattr(args, "topk", 1), reference=reference,
                                 options=options)
        try:
            explanation = explain_images(model, [image], args.method, request, layer)[0]
        except CnnkitError as e:
            if not args.features:
                raise
            state["maps"] = False  # the features alone (a pretraining checkpoint has no classes to map)
            print(f"note: no maps: {e}; writing the features only")
        else:
            files = explanation.save(out, stem)
            for t, label in enumerate(explanation.labels):
                rows.append({"image": str(path), "rank": t, "label": label, "method": args.method,
                             "layer": explanation.layer, "overlay": files[2 * t].relative_to(out).as_posix(),
                             "map": files[2 * t + 1].relative_to(out).as_posix()})
            said = "; ".join(explanation.labels) or "nothing to explain"
            at = f" at {explanation.layer}" if explanation.layer else ""
            print(f"{path}: {said} ({args.method}{at})")
            for note in notes(explanation):
                print(f"note: {note}")
    if args.features and not state["maps"]:
        print(f"{path}: {len(features)} feature files")


def notes(explanation: Any) -> list[str]:
    """One line per map that needs a word: a flat one (all zero: no evidence found), a target predicted
    nowhere (explained over the whole image)."""
    from cnnkit.explain.methods import LAYER_METHODS

    method, said = explanation.method, []
    for label, flat, nowhere in zip(explanation.labels, explanation.flat, explanation.nowhere):
        if nowhere:
            said.append(f"{label}: predicted nowhere in the image, so it is explained over the whole image")
        if flat:
            where = f" at {explanation.layer}" if explanation.layer else ""
            why = " (Grad-CAM keeps only positive evidence)" if method in LAYER_METHODS else ""
            other = "ig" if method == "occlusion" else "occlusion"
            said.append(f"{label}: the map is flat: {method} found no evidence for it{where}{why}; try "
                        f"--method {other}")
    return said


def _stems(paths: list[Path]) -> list[str]:
    """Output stems that mirror the inputs' folders below their common one (cat/0.png and dog/0.png stay
    apart), made unique where two inputs differ only in extension."""
    folders = [os.path.dirname(os.path.abspath(p)) for p in paths]
    common = Path(os.path.commonpath(folders)) if paths else None
    root = common if common is not None and common != Path(common.anchor) else None
    stems: list[str] = []
    for path in paths:
        rel = Path(os.path.abspath(path)).relative_to(root) if root else Path(path.name)
        stem = str(rel.with_suffix(""))
        stem = stem if stem not in stems else f"{stem}_{rel.suffix.lstrip('.')}"
        stems.append(stem if stem not in stems else f"{stem}_{len(stems)}")
    return stems

"""``cnnkit summary``: the layer table (output shapes, parameters, FLOPs, receptive fields) of a registered model
or of a checkpoint's network, and its architecture diagram (``--diagram``)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cnnkit.errors import CnnkitError

EXAMPLES = """examples:
  cnnkit summary basic_cnn --imgsz 28 --in-chans 1
  cnnkit summary resnet18 --imgsz 224
  cnnkit summary unet_resnet18 --imgsz 256 --num-classes 11
  cnnkit summary segnet_basic --imgsz 128 --diagram segnet.svg
  cnnkit summary runs/segment/exp/best.pt     (the checkpoint's network, at its training size)"""


def add_summary_parser(p: argparse.ArgumentParser, bounded: Callable[..., Callable[[str], float]]) -> None:
    """The flags of ``cnnkit summary`` (``bounded``: main's range-checked argparse types)."""
    p.epilog = EXAMPLES
    p.add_argument("model", metavar="MODEL", help="registered model name, or a checkpoint (.pt) or run folder "
                                                  "(its best.pt, else last.pt): the network its card describes")
    p.add_argument("--imgsz", type=bounded(int, 1), default=None,
                   help="input side (pixels) [default: 224; a checkpoint's training size, else its crop]")
    p.add_argument("--in-chans", type=bounded(int, 1), default=None,
                   help="input channels [default: 3; a checkpoint's]")
    p.add_argument("--num-classes", type=bounded(int, 1), default=10,
                   help="number of classes (a registered name; a checkpoint has its own)")
    p.add_argument("--diagram", metavar="FILE", default=None,
                   help="also draw the architecture (blocks with output shapes, skip connections) to FILE.svg or .png")


def _summary_network(args: argparse.Namespace) -> tuple[Any, tuple[int, int, int, int], str, str]:
    """(network, input shape, header line, diagram title) of `cnnkit summary`'s MODEL: a registered name, or a
    checkpoint (.pt) or run folder (its best.pt, else last.pt), whose card gives the network and its input."""
    source = Path(args.model)
    if source.is_dir() or source.is_file() or source.suffix.lower() == ".pt":
        from cnnkit.engine.checkpoint import load_checkpoint
        from cnnkit.models.summary import card_input_shape
        from cnnkit.models.wrapper import build_image_model

        if source.is_dir():
            found = [source / n for n in ("best.pt", "last.pt") if (source / n).is_file()]
            if not found:
                raise CnnkitError(f"{source}: holds no best.pt or last.pt; give a run folder of `cnnkit train`, a "
                                  "checkpoint file or a registered model name (`cnnkit models` lists them)")
            source = found[0]
        if not source.is_file():  # load_checkpoint's message names --weights, which summary lacks
            raise CnnkitError(f"{source}: no such checkpoint; give a checkpoint file (.pt), a run folder or a "
                              "registered model name (`cnnkit models` lists them)")
        meta = load_checkpoint(source)["meta"]
        shape = card_input_shape(meta, args.imgsz or 0, args.in_chans or 0)
        size = f"{shape[1]}×{shape[2]}×{shape[3]}"
        header = (f"{source}: {meta.model} ({meta.task}), input {list(shape)}, {meta.num_outputs} outputs "
                  "(FLOPs: one multiply-add = 2)")
        return build_image_model(meta).net, shape, header, f"{meta.model}, input {size}"
    from cnnkit.models import accepts, create_model

    imgsz, chans = args.imgsz or 224, args.in_chans or 3
    kw = {"input_size": imgsz} if accepts(args.model, "input_size") else {}
    model = create_model(args.model, num_classes=args.num_classes, in_chans=chans, **kw)
    shape = (1, chans, imgsz, imgsz)
    header = f"{args.model}: input {list(shape)}, {args.num_classes} classes (FLOPs: one multiply-add = 2)"
    return model, shape, header, f"{args.model}, input {chans}×{imgsz}×{imgsz}"


def cmd_summary(args: argparse.Namespace) -> int:
    from cnnkit.models.summary import count_flops, format_table, layer_table

    diagram = Path(args.diagram) if args.diagram else None
    if diagram is not None and diagram.suffix.lower() not in (".svg", ".png"):  # said before building anything
        raise CnnkitError(f"--diagram {diagram}: a diagram is written as .svg or .png, not '{diagram.suffix}'; "
                          "name the file with one of those")
    model, shape, header, title = _summary_network(args)
    try:
        table = format_table(layer_table(model, shape), count_flops(model, shape))
    except (RuntimeError, MemoryError) as e:
        hint = "a larger" if min(shape[2:]) < 64 else "a smaller"  # pooled away to nothing, or out of memory
        raise CnnkitError(f"--imgsz {shape[2]}: {args.model} cannot run at this size "
                          f"({str(e).splitlines()[0][:120]}); give {hint} --imgsz") from None
    print(header)
    print(table)
    if diagram is not None:
        from cnnkit.models.diagram import draw_diagram

        try:
            draw_diagram(model, shape, diagram, title=title)
        except OSError as e:  # the CLI's own OSError message names --out / --project, which summary lacks
            raise CnnkitError(f"--diagram {e.filename or diagram}: {e.strerror or e}; give --diagram a file "
                              "in a folder you can write to") from None
        print(f"diagram: {diagram}")
    return 0

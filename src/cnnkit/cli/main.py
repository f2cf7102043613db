"""``cnnkit`` command line: train, val, predict, export, serve, data, models, summary, demo."""

from __future__ import annotations

import argparse
import difflib
import errno
import logging
import math
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

from cnnkit import __version__
from cnnkit.cli.annotate import add_annotate_parser
from cnnkit.cli.embed import add_embed_parser
from cnnkit.cli.explain import add_explain_parser
from cnnkit.cli.flags import add_config_flags, add_option_flags
from cnnkit.cli.grow import add_segment_parser
from cnnkit.cli.recognize import EXAMPLES as RECOGNITION_EXAMPLES
from cnnkit.cli.recognize import add_recognition_parsers
from cnnkit.cli.report import EXAMPLES as REPORT_EXAMPLES
from cnnkit.cli.report import add_report_parser
from cnnkit.cli.summary import add_summary_parser
from cnnkit.data.images import DEFAULT_MAX_PIXELS
from cnnkit.errors import CnnkitError
from cnnkit.tasks import get_spec, task_names

EXAMPLES = {
    "train": """examples:
  cnnkit train classify --data shapes --model fastnet_small --epochs 5 --imgsz 32
  cnnkit train classify --data path/to/images --model resnet18 --imgsz 128 --val-split 0.2
  cnnkit train classify --data ../shared/datasets/fashion-mnist --model fastnet_small --batch 256 --lr 0.2
  cnnkit train classify --config recipe.yaml --epochs 20       (flags override the recipe)
  cnnkit train classify --resume --name exp                  (continue runs/classify/exp)
  cnnkit train segment --data shapes --model unet_basic --epochs 5
  cnnkit train segment --data ../shared/datasets/camvid --model unet_resnet18 --ignore-index 11 \\
      --class-weights median --max-size 240 --loss ce+dice
  cnnkit train segment --data nuclei/ --model unet_resnet18 --binary --imgsz 256
  cnnkit train instance --data shapes --model maskrcnn_resnet18 --imgsz 96 --epochs 10
  cnnkit train instance --data coco/annotations.json --model maskrcnn_resnet50 --pretrained r50.pth
  cnnkit train instance --config dsb2018_maskrcnn --data ../shared/datasets/dsb2018
  cnnkit train detect --data yolo_folder/ --model fasterrcnn_mobilenet_v3_large --imgsz 512
  cnnkit train pretrain --data my_unlabelled_photos/ --model resnet18 --imgsz 96 --epochs 50
  cnnkit train pretrain --data ../shared/datasets/fashion-mnist --val ../shared/datasets/fashion-mnist \
      --model fastnet_small --method simclr --epochs 6     (k-NN accuracy on the labelled --val each epoch)
  cnnkit train classify --data few_labels/ --model resnet18 --pretrained runs/pretrain/exp/best.pt""",
    "val": """examples:
  cnnkit val --weights runs/classify/exp/best.pt --data path/to/images
  cnnkit val --weights best.pt --data labels.csv --tta
  cnnkit val --weights best.pt --data cifar10/ --split test""",
    "predict": """examples:
  cnnkit predict --weights runs/classify/exp/best.pt photo.jpg more_photos/ 'shots/*.png'
  cnnkit predict --weights best.pt images/ --topk 3 --out predictions
  cnnkit predict --weights runs/segment/exp/best.pt street.png --tta --probs
  cnnkit predict --weights best.pt huge_scan.tif --mode slide --tile 512 --overlap 0.25
  cnnkit predict --weights runs/instance/exp/best.pt cells/ --score-thresh 0.3 --max-det 500
  cnnkit predict --weights best.pt slide.png --tile 512 --overlap 0.2   (instance: tiles merged)""",
    "embed": """examples:
  cnnkit embed --weights runs/pretrain/exp/best.pt photos/            (embeddings.npy, embeddings.csv)
  cnnkit embed --weights best.pt photos/ --query photos/cat.jpg --k 10  (neighbours.csv)
  cnnkit embed --weights best.pt photos/ --clusters 8 --cluster-links --map tsne
  cnnkit embed --weights best.pt scans/ --duplicates 0.95             (near-duplicate pairs)""",
    "data": """examples:
  cnnkit data check path/to/data                 (layout, splits, classes, sizes, problems; exit 2 if unusable)
  cnnkit data check coco/ --task detect
  cnnkit data check nuclei/ --binary             (masks read as train segment --binary reads them)
  cnnkit data convert ../shared/datasets/dsb2018 --to coco --out dsb_coco
  cnnkit data convert dsb_coco/annotations.json --to yolo --out dsb_yolo
  cnnkit data convert dsb_yolo --to masks --out dsb_maps""",
    "models": "examples:\n  cnnkit models\n  cnnkit models --task segment --imgsz 256\n  cnnkit models --no-flops",
    "export": """examples:
  cnnkit export --weights runs/classify/exp/best.pt                     (best.onnx beside it)
  cnnkit export --weights best.pt --dynamic --verify --data path/to/images
  cnnkit export --weights runs/segment/exp/best.pt --dynamic --half --out seg.onnx
  cnnkit export --weights best.pt --format torchscript
  cnnkit predict --weights best.onnx photos/      (onnxruntime; torch is not imported)
  cnnkit val --weights best.onnx --data path/to/images""",
    "serve": """examples:
  cnnkit serve --weights runs/classify/exp/best.pt          (http://127.0.0.1:8000, API docs at /docs)
  cnnkit serve --weights best.onnx --port 9000 --workers 2
  curl -F file=@photo.jpg 'http://127.0.0.1:8000/predict?topk=3'
  curl --data-binary @photo.jpg -H 'Content-Type: image/jpeg' 'http://127.0.0.1:8000/predict?overlay=true'
  cnnkit serve --weights runs/recognize/exp/best.pt --gallery people.npz    (also /verify, /search, /gallery)
  curl -F a=@one.jpg -F b=@two.jpg http://127.0.0.1:8000/verify
  curl -F image=@face.jpg 'http://127.0.0.1:8000/search?k=3'
  curl -H "X-API-Key: $KEY" -F name=alice -F images=@a1.jpg -F images=@a2.jpg http://127.0.0.1:8000/gallery
                                                (enrol: needs --api-key, or --allow-enrol on a server without one)""",
    "demo": "examples:\n  cnnkit demo\n  cnnkit demo --task segment\n  cnnkit demo --epochs 3 --out /tmp/demo",
}


def _train_examples(task: str) -> str:
    """The train examples of ``task`` (with their continuation lines), or a generic one for a task without."""
    kept, keep = [], False
    for line in EXAMPLES["train"].splitlines()[1:]:
        if line.startswith("  cnnkit "):
            keep = f"train {task} " in line
        if keep:
            kept.append(line)
    return "examples:\n" + "\n".join(kept or [f"  cnnkit train {task} --data DATA --model MODEL --epochs 10"])


class Parser(argparse.ArgumentParser):
    """argparse with cnnkit's error form: one line naming the flag, exit code 2 (no usage block)."""

    argv: list[str] = []

    def parse_args(self, args: Any = None, namespace: Any = None) -> Any:  # type: ignore[override]
        self.argv = list(sys.argv[1:] if args is None else args)  # to name the subcommand a stray flag was given to
        return super().parse_args(args, namespace)

    def error(self, message: str):  # type: ignore[override]
        parser: argparse.ArgumentParser = self
        if message.startswith("unrecognized arguments:"):  # reported by the top parser: the subcommand's is meant
            parser = self._innermost()
            flags = [t.split("=")[0] for t in message.split(":", 1)[1].split() if t.startswith("--")]
            known = [o for a in parser._actions for o in a.option_strings]
            close = difflib.get_close_matches(flags[0], known, n=1, cutoff=0.5) if flags else []
            message += f" (did you mean {close[0]}?)" if close else ""
        self.exit(2, f"error: {parser.prog}: {message}; see {parser.prog} --help\n")

    def _innermost(self) -> argparse.ArgumentParser:
        parser: argparse.ArgumentParser = self
        for token in self.argv:
            subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
            if subs and token in subs[0].choices:
                parser = subs[0].choices[token]
        return parser


def bounded(kind: type, low: float | None = None, high: float | None = None, above: bool = False
            ) -> Callable[[str], float]:
    """An argparse type: ``kind`` within [low, high] (``above``: strictly over ``low``); else argparse's
    one-line error that names the flag."""
    def parse(text: str):
        try:
            value = kind(text)
            if not math.isfinite(value):
                raise ValueError(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {'a whole number' if kind is int else 'a number'}, "
                                             f"got {text!r}") from None
        if low is not None and (value <= low if above else value < low):
            raise argparse.ArgumentTypeError(f"must be {'above' if above else 'at least'} {low}, got {text}")
        if high is not None and value > high:
            raise argparse.ArgumentTypeError(f"must be at most {high}, got {text}")
        return value
    parse.__name__ = kind.__name__
    return parse


WEIGHTS_HELP = "a cnnkit checkpoint (best.pt / last.pt), or an .onnx or TorchScript file from `cnnkit export`"


def _add_inference_flags(parser: argparse.ArgumentParser, batch: int, weights_help: str = WEIGHTS_HELP) -> None:
    parser.add_argument("--weights", required=True, help=weights_help)
    parser.add_argument("--batch", type=bounded(int, 1), default=batch, help="images per batch")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N, N (a CUDA index) or mps")
    _add_max_pixels(parser)


def _add_max_pixels(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--max-pixels", type=bounded(int, 1), default=DEFAULT_MAX_PIXELS,
                        help="largest image read (pixels, from its header); larger is refused as a possible "
                             "decompression bomb")


def _add_predict_flags(p: argparse.ArgumentParser) -> None:
    add_option_flags(p)
    p.add_argument("--out", default="", help="output folder [default: runs/<task>/predict, predict2, ...]")
    p.add_argument("--no-images", action="store_true",
                   help="no annotated pictures (segment still writes the index masks)")


def _add_deploy_parsers(add: Callable[[str, str], argparse.ArgumentParser]) -> None:
    p = add("export", "export a checkpoint to ONNX or TorchScript: uint8 images in, the task's results out")
    p.add_argument("--weights", required=True, help="a cnnkit checkpoint (best.pt / last.pt)")
    p.add_argument("--format", default="onnx", choices=("onnx", "torchscript"), help="file format")
    p.add_argument("--imgsz", type=bounded(int, 0), default=0,
                   help="input side (pixels) [default: the training size or crop]")
    p.add_argument("--dynamic", action="store_true",
                   help="free batch size (and, for segment, free height and width); instance and detect "
                        "always take one image of any size")
    p.add_argument("--half", action="store_true", help="float16 weights and arithmetic (classify, segment)")
    p.add_argument("--out", default="", help="output file [default: beside the weights, .onnx / .torchscript]")
    p.add_argument("--verify", action="store_true", help="compare with PyTorch: output differences, metrics on "
                   "--data, CPU latency (eager, exported, torch.compile)")
    p.add_argument("--data", default="", help="--verify: data whose val split scores both models")
    p.add_argument("--limit", type=bounded(int, 0), default=200,
                   help="--verify: validation images scored, drawn across the split with a fixed seed (0: all)")
    p.add_argument("--no-compile", action="store_true", help="--verify: skip torch.compile's latency")

    p = add("serve", "serve a model over HTTP: a web page at /, a JSON API at /predict, docs at /docs")
    p.add_argument("--weights", required=True, help="a cnnkit checkpoint or an exported .onnx file")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (0.0.0.0 exposes it to the network)")
    p.add_argument("--port", type=bounded(int, 1, 65535), default=8000, help="TCP port")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (checkpoints)")
    p.add_argument("--workers", type=bounded(int, 1), default=1,
                   help="inference threads: requests that run at once (checkpoints and exported files alike)")
    p.add_argument("--queue", type=bounded(int, 0), default=16, help="requests waiting beyond those; more get 503")
    p.add_argument("--timeout", type=bounded(float, 0, above=True), default=30.0,
                   help="seconds a request may wait and run; then 504")
    p.add_argument("--max-upload-mb", type=bounded(float, 0, above=True), default=20.0,
                   help="largest upload (MB); larger gets 413")
    p.add_argument("--max-pixels", type=bounded(int, 1), default=50_000_000,
                   help="largest image (pixels); larger gets 413")
    p.add_argument("--body-timeout", type=bounded(float, 0, above=True), default=20.0,
                   help="seconds a client may take to send its upload; slower gets 408")
    p.add_argument("--api-key", default=os.environ.get("CNNKIT_API_KEY", ""),
                   help="require this key on /predict and the recognition routes (header X-API-Key or "
                        "Authorization: Bearer); prefer the CNNKIT_API_KEY environment variable, which other "
                        "users cannot see in the process list")
    p.add_argument("--gallery", default=None, metavar="G.npz",
                   help="a recognition model: the gallery POST /search searches and POST /gallery enrols into "
                        "(made by the first enrolment when missing; refused when another model made it)")
    p.add_argument("--allow-enrol", action="store_true",
                   help="let POST /gallery and DELETE /gallery/NAME change the gallery without an API key: anyone "
                        "who can reach the server could then enrol or remove identities [default: refused (403) "
                        "unless --api-key is set]")


def _add_data_parser(add: Callable[[str, str], argparse.ArgumentParser]) -> None:
    p = add("data", "check a data set as training would read it, or convert instance annotations between "
                    "COCO JSON, YOLO text files and instance-map folders")
    p.add_argument("action", choices=("check", "convert"), help="what to do")
    p.add_argument("source", help="a data set in any layout (a folder, a COCO .json, a data.yaml, a CSV)")
    p.add_argument("--task", choices=task_names(), default=None,
                   help="check: read the data for this task [default: guessed from the layout]")
    p.add_argument("--val-split", type=bounded(float, 0, 0.95), default=0.0,
                   help="check: fraction held out when there is no val split [default: the task's]")
    p.add_argument("--seed", type=int, default=0, help="check: seed of the held-out split")
    p.add_argument("--val-group", default="", help="check: hold out whole groups, as train --val-group")
    p.add_argument("--binary", action="store_true", help="check (segment): binary masks, as train segment --binary")
    p.add_argument("--ignore-index", type=bounded(int, 0, 65535), default=None,
                   help="check (segment): mask value ignored, as train segment --ignore-index [default: 255]")
    p.add_argument("--classes-file", default="", help="check (segment): as train segment --classes-file")
    p.add_argument("--to", choices=("coco", "yolo", "masks"), help="convert: output format")
    p.add_argument("--out", help="convert: output folder (new or empty)")
    p.add_argument("--skip-bad", action="store_true", help="skip bad or missing files with a warning, as training "
                   "with --skip-bad would")
    _add_max_pixels(p)


QUIET_HELP = "no progress bars (for logs); results and messages are still printed"


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="cnnkit", description="Train, evaluate and use CNNs on images.")
    parser.add_argument("--version", action="version", version=f"cnnkit {__version__}")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks")
    parser.add_argument("--quiet", action="store_true", help=QUIET_HELP)
    sub = parser.add_subparsers(dest="command", required=True)

    def add(name: str, help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text,
                           epilog=EXAMPLES.get(name) or RECOGNITION_EXAMPLES.get(name),
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show full tracebacks")
        p.add_argument("--quiet", action="store_true", default=argparse.SUPPRESS, help=QUIET_HELP)
        return p

    p = add("train", "train a model for a task; `cnnkit train <task> --help` lists that task's flags")
    tasks = p.add_subparsers(dest="task", required=True, metavar="TASK", parser_class=Parser)
    for name in task_names():
        spec = get_spec(name)
        t = tasks.add_parser(name, help=spec.summary, description=f"train a model for the {name} task: {spec.summary}",
                             epilog=_train_examples(name), formatter_class=argparse.RawDescriptionHelpFormatter)
        t.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show full tracebacks")
        t.add_argument("--quiet", action="store_true", default=argparse.SUPPRESS, help=QUIET_HELP)
        t.add_argument("--config", help="YAML recipe of config fields; flags given here override it")
        add_config_flags(t, spec)

    p = add("val", "evaluate a checkpoint on a data set")
    _add_inference_flags(p, batch=64)
    p.add_argument("--data", required=True, help="data in any training layout")
    p.add_argument("--split", default="auto", choices=("auto", "val", "train", "test", "all"),
                   help="images to score: val (the val folder, or the images held out at training, recomputed "
                        "from the seed and fraction saved with the model), train, test, all; auto: val, or all "
                        "of a data set the model did not train on")
    p.add_argument("--workers", type=bounded(int, 0), default=0, help="DataLoader worker processes")
    p.add_argument("--skip-bad", action="store_true", help="skip unreadable images with a warning")
    p.add_argument("--out", default="", help="folder for the reports [default: next to the weights, val/]")
    add_option_flags(p, evaluate=True)

    p = add("predict", "predict images with a checkpoint")
    _add_inference_flags(p, batch=32)
    p.add_argument("sources", nargs="+", metavar="SOURCE", help="image files, folders or globs")
    p.add_argument("--skip-bad", action="store_true", help="skip unreadable images with a warning")
    _add_predict_flags(p)

    p = add("explain", "heatmaps of what a checkpoint looks at: Grad-CAM, Grad-CAM++, Score-CAM, occlusion or "
                       "integrated gradients, per image and class (segment: per class's pixels; instance: per object)")
    add_explain_parser(p, bounded)

    p = add("embed", "one vector per image from a checkpoint's encoder; neighbours, clusters, duplicates, a map")
    _add_inference_flags(p, batch=64, weights_help="a cnnkit checkpoint of any task (best.pt / last.pt): its encoder "
                                                   "embeds; exports keep no encoder")
    add_embed_parser(p, bounded)

    add_recognition_parsers(add, bounded)

    p = add("segment", "masks without a model: segments found in the images, or grown from a few seeds per class; "
                       "writes a data set for cnnkit train segment")
    add_segment_parser(p, bounded)
    add_annotate_parser(add, bounded)

    _add_data_parser(add)
    _add_deploy_parsers(add)

    p = add("models", "list registered models with parameters and FLOPs")
    p.add_argument("--task", default=None, choices=task_names(), help="only models of this task")
    p.add_argument("--no-flops", action="store_true", help="leave out the FLOPs column")
    p.add_argument("--flops", action="store_true", help=argparse.SUPPRESS)  # the default now; kept for old scripts
    p.add_argument("--imgsz", type=bounded(int, 16), default=224, help="input side for the FLOPs column (pixels); "
                   "'-' for detectors, whose work depends on the objects found")

    p = add("summary", "layer table of a model: output shapes, parameters, FLOPs and receptive fields")
    add_summary_parser(p, bounded)

    p = add("report", "write a run folder's report.html again: curves, figures, config, the worst validation "
                      "images, explanations, the network's diagram (training writes it when it ends)")
    p.epilog = REPORT_EXAMPLES
    add_report_parser(p, bounded)

    _add_demo_parser(add)
    return parser


def _add_demo_parser(add: Callable[[str, str], argparse.ArgumentParser]) -> None:
    p = add("demo", "generate synthetic shapes; train, evaluate and predict each task (about 3 minutes on 2 CPU cores)")
    p.add_argument("--epochs", type=bounded(int, 0), default=0, help="override the demo's epochs")
    every = [t for t in task_names() if get_spec(t).demo is not None]
    usual = [t for t in every if get_spec(t).demo.default]  # type: ignore[union-attr]  # listed in every
    p.add_argument("--task", action="append", choices=every,
                   help=f"run only this task's demo (repeatable) [default: {', '.join(usual)}]")
    p.add_argument("--out", default="runs/demo", help="project folder for the demo's runs")


OS_FIX = "check the path and its permissions (--out, --project)"
OS_FIXES = {errno.EEXIST: "a file is in the way of a folder: choose another --out / --project",
            errno.ENOTDIR: "a file is in the way of a folder: choose another --out / --project",
            errno.EISDIR: "that is a folder: give a file name",
            errno.EACCES: "you cannot write there: choose a folder you can write to (--out / --project)",
            errno.EPERM: "you cannot write there: choose a folder you can write to (--out / --project)",
            errno.EROFS: "a read-only file system: choose a folder you can write to (--out / --project)",
            errno.ENOSPC: "the disk is full: free some space or write elsewhere",
            errno.ENOENT: "check the path, and that its folder can be made"}


def _unknown_task(argv: list[str]) -> str:
    """The one-line error for `cnnkit train <not a task>` (with a "did you mean"), else ''."""
    if "train" in argv:
        i = argv.index("train") + 1
        if i < len(argv) and not argv[i].startswith("-") and argv[i] not in task_names():
            try:
                get_spec(argv[i])
            except CnnkitError as e:
                return str(e)
    return ""


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    unknown = _unknown_task(argv)
    if unknown:
        print(f"error: {unknown}", file=sys.stderr)
        return 2
    args = build_parser().parse_args(argv)
    # cnnkit's own messages at INFO; other libraries' chatter (matplotlib's "generated new fontManager") stays out
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    logging.getLogger("cnnkit").setLevel(logging.INFO)
    from cnnkit.cli import commands
    from cnnkit.progress import set_quiet

    set_quiet(getattr(args, "quiet", False))

    try:
        return getattr(commands, f"cmd_{args.command}")(args) or 0
    except CnnkitError as e:
        if getattr(args, "debug", False):
            raise
        print(f"error: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `cnnkit data check DIR | head`: the reader left; so do we, quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except OSError as e:  # an output folder that is a file, read-only, full, or gone: the user's to fix
        if getattr(args, "debug", False) or e.filename is None:
            raise
        print(f"error: {e.filename}: {e.strerror or e}; {OS_FIXES.get(e.errno or 0, OS_FIX)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)  # a training run has said how to continue it
        return 130


if __name__ == "__main__":
    sys.exit(main())

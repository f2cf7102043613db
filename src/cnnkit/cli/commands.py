"""What each ``cnnkit`` subcommand does; argument parsing lives in main.py."""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path
from typing import Any

from cnnkit.cli.annotate import cmd_annotate  # noqa: F401 - a subcommand
from cnnkit.cli.deploy import cmd_export, cmd_serve, load_predictor  # noqa: F401 - subcommands
from cnnkit.cli.embed import cmd_embed  # noqa: F401 - a subcommand
from cnnkit.cli.explain import cmd_explain  # noqa: F401 - a subcommand
from cnnkit.cli.grow import cmd_segment  # noqa: F401 - a subcommand
from cnnkit.cli.models_table import cmd_models  # noqa: F401 - a subcommand
from cnnkit.cli.recognize import cmd_gallery, cmd_search, cmd_verify  # noqa: F401 - subcommands
from cnnkit.cli.report import cmd_report  # noqa: F401 - a subcommand
from cnnkit.cli.summary import cmd_summary  # noqa: F401 - a subcommand
from cnnkit.config import load_yaml, make_config
from cnnkit.data.images import set_max_pixels
from cnnkit.errors import CnnkitError
from cnnkit.files import atomic_write_bytes, atomic_write_csv, json_bytes, next_free
from cnnkit.options import make_options, option_infos
from cnnkit.progress import progress_bar


def cmd_train(args: argparse.Namespace) -> int:
    from cnnkit.api import train_with, with_task_defaults
    from cnnkit.tasks import get_spec

    values = load_yaml(args.config, task=args.task) if args.config else {}
    if "task" in values and not isinstance(values["task"], str):
        raise CnnkitError(f"{args.config}: 'task' must be a task name such as {args.task}, got {values['task']!r}")
    if "task" in values and values["task"] != args.task:
        raise CnnkitError(f"{args.config}: a recipe for {values['task']}, not {args.task}; run `cnnkit train "
                          f"{values['task']} --config {args.config}`, or drop 'task' from the recipe")
    given = {k: v for k, v in vars(args).items() if k not in ("command", "config", "debug", "quiet", "task")}
    values.update(given, task=args.task)
    values = with_task_defaults(values)
    if values.get("resume") and "epochs" not in values:
        values["epochs"] = 0  # a resumed run keeps its own number of epochs unless --epochs is given
    origin = str(args.config) if args.config else "command line"
    result = train_with(make_config(values, origin=origin, flags=set(given)))
    if not result.is_main:  # under torchrun the summary and the next commands are rank 0's to print
        return 0
    print(f"run folder: {result.run_dir}")
    best = result.run_dir / "best.pt"
    if best.exists():
        cfg = load_yaml(result.run_dir / "config.yaml", saved=True)
        steps = get_spec(args.task).next_steps
        model = str(cfg.get("model", "MODEL"))
        print("next:\n" + "\n".join("  " + s.format(weights=best, data=cfg.get("data", "DATA"), model=model,
                                                   model_task=_task_of_model(model)) for s in steps))
    return 0


def _task_of_model(model: str) -> str:
    """The task that trains ``model`` (a pretrained trunk is fine-tuned in its own network's task)."""
    from cnnkit.models import get_entry
    from cnnkit.tasks import task_names, task_of_kind

    try:
        return task_of_kind(get_entry(model).kind)
    except (CnnkitError, KeyError):  # a model only a script registers: the first task, as `cnnkit train` takes
        return task_names()[0]


def _option_flags(args: argparse.Namespace) -> dict[str, Any]:
    """The prediction options given as flags (unset ones are absent: their default is SUPPRESS)."""
    from cnnkit.tasks import get_spec, task_names

    every = {i.name for t in task_names() for i in option_infos(get_spec(t).options)}
    return {k: v for k, v in vars(args).items() if k in every}


def _given_options(args: argparse.Namespace, options: type, task: str, runtime: str = "pytorch",
                   evaluate: bool = False) -> Any:
    """The options dataclass from the flags, checked against the model's task: a flag it does not take is
    one line naming it."""
    return make_options(options, _option_flags(args), task, runtime, flags=True, evaluate=evaluate)


def cmd_val(args: argparse.Namespace) -> int:
    from cnnkit.validate import validate

    set_max_pixels(args.max_pixels)
    done = validate(args.weights, args.data, args.split, args.batch, args.device, args.workers, args.skip_bad,
                    args.out, _option_flags(args), flags=True)
    if done.table:
        print(done.table)
    print(" ".join(f"{k}={v:.4f}" for k, v in done.metrics.items()))
    print(done.summary())
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    """Checkpoints run on PyTorch; .onnx files on onnxruntime, without importing torch."""
    from cnnkit.data.images import iter_sources

    set_max_pixels(args.max_pixels)
    model = load_predictor(args.weights, args.device)
    options = _option_flags(args)
    _given_options(args, model.options_type, model.meta.task, model.runtime)  # refused here by flag name
    paths = iter_sources(args.sources)
    out = Path(args.out) if args.out else next_free(Path("runs") / model.meta.task / "predict")
    inside = next((p for p in paths if p.resolve().is_relative_to(out.resolve())), None)
    if inside is not None:  # the outputs (<stem>_mask.png, ...) could overwrite input images
        raise CnnkitError(f"--out {out}: holds input images (such as {inside}); write the predictions to another "
                          "folder")
    made = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    try:
        return _predict_all(model, paths, out, options, args)
    except Exception:
        if made and not any(out.iterdir()):  # a failed run leaves no empty folder (the next is not predict2)
            out.rmdir()
        raise


def _predict_all(model, paths: list[Path], out: Path, options: dict, args: argparse.Namespace) -> int:
    from cnnkit.data.images import open_readable
    from cnnkit.data.inputs import InputWatch

    start, stems = time.perf_counter(), set()
    records: list[dict] = []
    rows: list[dict] = []
    watch = InputWatch(model.meta)  # inputs far from the training images are said, once per kind
    bar, root = progress_bar(total=len(paths), desc="predict", unit="img"), common_folder(paths)
    for i in range(0, len(paths), args.batch):
        chunk, images = open_readable(paths[i:i + args.batch], args.skip_bad)  # decoded once, for model and pictures
        for path, image in zip(chunk, images):
            watch.check(image, str(path))
        for path, image, pred in zip(chunk, images, model.predict(images, **options)) if images else ():
            # outputs mirror the inputs' folders: cat/0000.png and dog/0000.png once both became 0000_pred.png
            rel = Path(os.path.abspath(path)).relative_to(root) if root else Path(path.name)
            stem = str(rel.with_suffix(""))
            stem = stem if stem not in stems else f"{stem}_{rel.suffix.lstrip('.')}"  # a.png and a.jpg
            stem = stem if stem not in stems else f"{stem}_{len(records)}"
            stems.add(stem)
            (out / stem).parent.mkdir(parents=True, exist_ok=True)
            files = model.view.write_outputs(image, pred, model.meta, out, stem, pictures=not args.no_images)
            records.append({"path": str(path), **model.view.record(pred), **({"files": files} if files else {})})
            rows.append({"path": str(path), **model.view.csv_row(pred)})
            if len(records) <= 10:
                print(f"{path}: {model.view.describe(pred)}")
        bar.update(min(args.batch, len(paths) - i))
    bar.close()
    model.view.write_results(records, model.meta, out)  # tasks with a standard results file (COCO)
    atomic_write_csv(out / "predictions.csv", rows)
    atomic_write_bytes(out / "predictions.json", json_bytes(records, indent=2))
    if len(records) > 10:
        print(f"... and {len(records) - 10} more")
    extra = " and per-image files" if any("files" in r for r in records) else ""
    count = f"{len(records)} image{'' if len(records) == 1 else 's'}"
    print(f"{count} in {time.perf_counter() - start:.1f}s; predictions.csv, predictions.json{extra} in {out}")
    return 0


def common_folder(paths: list[Path]) -> Path | None:
    """The deepest folder holding every input, or None when they share none but the root.

    Absolute but not resolved: outputs mirror the paths as the user gave them, and a linked folder
    (pr/linked -> pool/sub) resolved to its target put pr/linked/s0.png's mask in pool/sub/."""
    if not paths:
        return None
    common = Path(os.path.commonpath([os.path.dirname(os.path.abspath(p)) for p in paths]))
    return common if common != Path(common.anchor) else None


def cmd_data(args: argparse.Namespace) -> int:
    set_max_pixels(args.max_pixels)
    if args.action == "check":
        from cnnkit.data.check import check_data
        from cnnkit.tasks.registry import check_tasks

        print("\n".join(check_data(args.source, check_tasks(), args.task, args.val_split, args.seed, args.val_group,
                                      args.skip_bad, args.binary, args.ignore_index, args.classes_file)))
        return 0
    from cnnkit.data.convert import convert
    from cnnkit.tasks import get_layouts

    if not args.to or not args.out:
        raise CnnkitError("data convert: give --to coco|yolo|masks and --out FOLDER")
    # convert reads instance annotations (COCO, YOLO, instance maps) with the instance task's layouts
    written = convert(args.source, args.to, args.out, skip_bad=args.skip_bad, layouts=get_layouts("instance"))
    print(f"wrote {', '.join(str(p) for p in written)}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from cnnkit.cli.demo import run_demo

    run_demo(Path(args.out), args.epochs, tuple(args.task or ()))
    return 0

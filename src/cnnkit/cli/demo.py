"""``cnnkit demo``: each task end to end on the built-in synthetic shapes: about 3 minutes on 2 CPU cores."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cnnkit.api import load, train_with, with_task_defaults
from cnnkit.config import make_config
from cnnkit.data.synthetic import SHAPE_NAMES, make_classification, make_scene
from cnnkit.engine.trainer import TrainResult

# sized for the whole demo to take about 3 minutes on 2 CPU cores (each stage's time in benchmarks/RESULTS.md)
DEMO_RECIPES = {
    "classify": {"data": "shapes:1500", "model": "fastnet_small", "imgsz": 32, "epochs": 5, "batch": 128, "lr": 0.2,
                 "warmup_epochs": 0.5, "label_smoothing": 0.1, "augment": "light", "channels_last": True},
    # AdamW reached mIoU 0.40 in 8 short epochs where SGD at 0.1 stayed at 0.26
    "segment": {"data": "shapes:1500", "model": "unet_basic", "max_size": 32, "epochs": 7, "batch": 16,
                "optimizer": "adamw", "lr": 0.003, "weight_decay": 1e-4, "warmup_epochs": 0.5, "augment": "light",
                "loss": "ce+dice", "channels_last": True,
                "model_args": {"widths": [16, 32, 48, 64, 96], "decoder_channels": [96, 64, 32, 16, 16]}},
    "pretrain": {"data": "shapes:2000", "val": "shapes:300", "model": "fastnet_small", "imgsz": 32, "epochs": 5},
    # light heads (32 FPN channels, 100 proposals, 64 RoIs an image): 23 images/s on 2 cores
    "instance": {"data": "shapes:280", "model": "maskrcnn_resnet18", "imgsz": 96, "epochs": 4, "batch": 4,
                 "lr": 0.02, "grad_clip": 10.0, "warmup_epochs": 0.5, "augment": "light",
                 "model_args": {"fpn_channels": 32, "mask_channels": 32, "box_width": 128, "box_batch": 64,
                                "rpn_pre_nms": 300, "rpn_post_nms": 100, "rpn_post_nms_test": 100,
                                "anchor_sizes": [8, 16, 32, 64, 128], "detections": 30}},
}


# the fine-tuning of the pretrain demo: 100 labelled images, from scratch or from the pretrained encoder
FEW_LABELS = {"task": "classify", "data": "shapes:100", "model": "fastnet_small", "imgsz": 32, "epochs": 15,
              "batch": 32, "lr": 0.05, "augment": "light"}


def _train(task: str, project: Path, epochs: int, recipe: dict | None = None, name: str = "") -> TrainResult:
    recipe = dict(recipe or DEMO_RECIPES[task], task=task, project=str(project), name=name or task, exist_ok=True)
    if epochs:
        recipe["epochs"] = epochs
    return train_with(make_config(with_task_defaults(recipe), origin="demo"))


def _new_scenes(folder: Path, size: int) -> list[tuple[Path, object]]:
    """Six scenes the models have never seen, written as PNG files (3 distractors, as the instance data)."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    out: list[tuple[Path, Any]] = []
    for i in range(6):
        scene = make_scene(900_000 + i, seed=1, size=size, max_distractors=3 if size > 64 else 2)
        path = folder / f"{i}_{SHAPE_NAMES[scene.label]}.png"
        Image.fromarray(scene.image).save(path)
        out.append((path, scene))
    return out


def demo_classify(project: Path, epochs: int) -> None:
    from PIL import Image

    result = _train("classify", project, epochs)
    samples = _new_scenes(project / "samples", 64)
    model = load(result.run_dir / "best.pt")
    predictions = model.predict([str(p) for p, _ in samples], topk=3)
    out = project / "predictions"
    out.mkdir(parents=True, exist_ok=True)
    correct = 0
    for (path, _), pred in zip(samples, predictions):
        truth = path.stem.split("_", 1)[1]
        correct += pred["class"] == truth
        model.view.visualise(Image.open(path), pred, model.meta).save(out / path.name)
        print(f"  {path.name}: predicted {pred['class']} ({pred['score']:.2f}), true {truth}")
    print(f"{correct}/{len(samples)} new images right; top-1 on validation {result.best.get('top1', 0):.3f}")
    print(f"run folder {result.run_dir}: " + ", ".join(sorted(p.name for p in result.run_dir.iterdir())))
    print(f"annotated predictions in {out}")
    _export_and_compare(result.run_dir / "best.pt", [str(p) for p, _ in samples], predictions)


def _export_and_compare(weights: Path, images: list[str], predictions: Sequence[dict]) -> None:
    """The model leaves PyTorch: an ONNX file that predicts the same classes on onnxruntime."""
    from cnnkit.api import export as export_model
    from cnnkit.api import load

    path, _ = export_model(weights, "onnx", dynamic=True)
    exported = load(path).predict(images, topk=3)
    same = sum(a["class"] == b["class"] for a, b in zip(predictions, exported))
    print(f"exported {path} ({path.stat().st_size / 1e6:.1f} MB): onnxruntime gives the same class on "
          f"{same}/{len(images)} new images; try `cnnkit serve --weights {path}` and open http://127.0.0.1:8000")


def _predict_new(task: str, project: Path, epochs: int, size: int, **options):
    """Train ``task``, then predict six new scenes, writing each task's files; yields (scene, prediction)."""
    from PIL import Image

    result = _train(task, project, epochs)
    samples = _new_scenes(project / f"samples_{task}", size)
    model = load(result.run_dir / "best.pt")
    out = project / f"predictions_{task}"
    out.mkdir(parents=True, exist_ok=True)
    for (path, scene), pred in zip(samples, model.predict([str(p) for p, _ in samples], **options)):
        model.view.write_outputs(Image.open(path), pred, model.meta, out, path.stem)
        print(f"  {path.name}: {model.view.describe(pred)}")
        yield scene, pred
    print(f"run folder {result.run_dir}: " + ", ".join(sorted(p.name for p in result.run_dir.iterdir())))
    print("validation: " + " ".join(f"{k}={v:.3f}" for k, v in result.best.items() if k in _SHOWN))
    print(f"pictures and masks of the new images in {out}")


_SHOWN = ("miou", "pixel_acc", "mask_ap", "mask_ap50", "box_ap50")


def demo_segment(project: Path, epochs: int) -> None:
    hits = total = 0
    # new scenes, at twice the 32 px the model trained on
    for scene, pred in _predict_new("segment", project, epochs, 64, tta=True):
        hits += int((pred["mask"] == scene.semantic).sum())
        total += scene.semantic.size
    print(f"pixel accuracy on 6 new 64 px images {hits / total:.3f}")


def demo_instance(project: Path, epochs: int) -> None:
    from cnnkit.data.instance_data import SHAPES_SIZE

    found = total = 0
    # a three-minute model is unsure of itself: show what it finds at score 0.2
    for scene, pred in _predict_new("instance", project, epochs, SHAPES_SIZE, score_thresh=0.2):
        total += len(scene.instances)
        found += len(pred["instances"])
    print(f"{found} objects found (score >= 0.2) in 6 new images holding {total} shapes")


def demo_pretrain(project: Path, epochs: int) -> None:
    """Pretrain an encoder on 3000 unlabelled scenes, then fine-tune it on 100 labelled ones, against the
    same training from scratch; both scored on 400 new scenes."""
    import numpy as np

    pre = _train("pretrain", project, epochs)
    print(f"pretrained without labels: embedding spread {pre.best.get('spread', 0):.2f} (0 = collapsed), k-NN top-1 "
          f"on labelled scenes {pre.best.get('knn_top1', 0):.3f}")
    images, labels = make_classification(400, seed=77)
    for name, start in (("from scratch", ""), ("from the pretrained encoder", str(pre.run_dir / "best.pt"))):
        run = _train("classify", project, 0, {**FEW_LABELS, "pretrained": start}, f"few_labels_{len(start) > 0}")
        predictions = load(run.run_dir / "best.pt").predict(list(images), batch=100)
        accuracy = float(np.mean([p["index"] == t for p, t in zip(predictions, labels)]))
        print(f"  100 labelled images, {name}: accuracy {accuracy:.3f} on 400 new images")
    print(f"embeddings of any folder: cnnkit embed --weights {pre.run_dir / 'best.pt'} FOLDER --clusters 4 --map tsne")


# task -> (the demo, what its data holds)
DEMOS = {"classify": (demo_classify, f"{len(SHAPE_NAMES)} shape classes"),
         "segment": (demo_segment, f"background + {len(SHAPE_NAMES)} shape classes"),
         "instance": (demo_instance, f"every shape an object of {len(SHAPE_NAMES)} classes"),
         "pretrain": (demo_pretrain, "the classify scenes without their labels, then 100 with")}


def run_demo(project: Path, epochs: int = 0, tasks: tuple[str, ...] = tuple(DEMOS)) -> None:
    """Generate shapes, train, evaluate, predict new images, and say where everything went."""
    for task in tasks:
        demo, classes = DEMOS[task]
        print(f"cnnkit demo ({task}): {classes} ({', '.join(SHAPE_NAMES)}), synthetic scenes")
        demo(project, epochs)


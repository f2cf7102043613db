"""``cnnkit demo``: each task end to end on the built-in synthetic shapes: about 3 minutes on 2 CPU cores.

Each task's part is its spec's ``demo`` (``cnnkit.tasks.registry.DemoSpec``): the recipe it trains and how
its model is shown, by what it predicts (labels, pixels, objects, an embedding), never by the task's name."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cnnkit.api import load, train_with, with_task_defaults
from cnnkit.config import make_config
from cnnkit.data.synthetic import SHAPE_NAMES, make_classification, make_scene
from cnnkit.engine.trainer import TrainResult
from cnnkit.tasks import get_spec, task_names
from cnnkit.tasks.registry import DemoSpec

# the fine-tuning of the embedding demo: 100 labelled images, from scratch or from the pretrained encoder
FEW_LABELS = {"task": "classify", "data": "shapes:100", "model": "fastnet_small", "imgsz": 32, "epochs": 15,
              "batch": 32, "lr": 0.05, "augment": "light"}


def demo_tasks(everything: bool = False) -> list[str]:
    """The tasks with a demo, in registry order (``everything``: also those a plain `cnnkit demo` leaves out)."""
    return [t for t in task_names() if (demo := get_spec(t).demo) is not None and (everything or demo.default)]


def _demo(task: str) -> DemoSpec:
    demo = get_spec(task).demo
    assert demo is not None  # demo_tasks() lists only tasks with one
    return demo


def _train(task: str, project: Path, epochs: int, recipe: Any = None, name: str = "") -> TrainResult:
    recipe = dict(recipe or _demo(task).recipe, task=task, project=str(project), name=name or task, exist_ok=True)
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


def demo_labels(task: str, project: Path, epochs: int) -> None:
    from PIL import Image

    demo = _demo(task)
    result = _train(task, project, epochs)
    samples = _new_scenes(project / "samples", demo.size)
    model = load(result.run_dir / "best.pt")
    predictions = model.predict([str(p) for p, _ in samples], **demo.options)
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
    _export_and_compare(result.run_dir / "best.pt", [str(p) for p, _ in samples], predictions, demo.options)


def _export_and_compare(weights: Path, images: list[str], predictions: Sequence[dict], options: Any) -> None:
    """The model leaves PyTorch: an ONNX file that predicts the same classes on onnxruntime."""
    from cnnkit.api import export as export_model
    from cnnkit.api import load

    path, _ = export_model(weights, "onnx", dynamic=True)
    exported = load(path).predict(images, **options)
    same = sum(a["class"] == b["class"] for a, b in zip(predictions, exported))
    print(f"exported {path} ({path.stat().st_size / 1e6:.1f} MB): onnxruntime gives the same class on "
          f"{same}/{len(images)} new images; try `cnnkit serve --weights {path}` and open http://127.0.0.1:8000")


def _predict_new(task: str, project: Path, epochs: int):
    """Train ``task``, then predict six new scenes, writing each task's files; yields (scene, prediction)."""
    from PIL import Image

    demo = _demo(task)
    result = _train(task, project, epochs)
    samples = _new_scenes(project / f"samples_{task}", demo.size)
    model = load(result.run_dir / "best.pt")
    out = project / f"predictions_{task}"
    out.mkdir(parents=True, exist_ok=True)
    for (path, scene), pred in zip(samples, model.predict([str(p) for p, _ in samples], **demo.options)):
        model.view.write_outputs(Image.open(path), pred, model.meta, out, path.stem)
        print(f"  {path.name}: {model.view.describe(pred)}")
        yield scene, pred
    print(f"run folder {result.run_dir}: " + ", ".join(sorted(p.name for p in result.run_dir.iterdir())))
    print("validation: " + " ".join(f"{k}={v:.3f}" for k, v in result.best.items() if k in _SHOWN))
    print(f"pictures and masks of the new images in {out}")


_SHOWN = ("miou", "pixel_acc", "mask_ap", "mask_ap50", "box_ap50")


def demo_pixels(task: str, project: Path, epochs: int) -> None:
    hits = total = 0
    for scene, pred in _predict_new(task, project, epochs):
        hits += int((pred["mask"] == scene.semantic).sum())
        total += scene.semantic.size
    print(f"pixel accuracy on 6 new {_demo(task).size} px images {hits / total:.3f}")


def demo_objects(task: str, project: Path, epochs: int) -> None:
    found = total = 0
    for scene, pred in _predict_new(task, project, epochs):
        total += len(scene.instances)
        found += len(pred["instances"])
    thresh = _demo(task).options.get("score_thresh")
    at = f" (score >= {thresh})" if thresh is not None else ""
    print(f"{found} objects found{at} in 6 new images holding {total} shapes")


def demo_embedding(task: str, project: Path, epochs: int) -> None:
    """Pretrain an encoder on 3000 unlabelled scenes, then fine-tune it on 100 labelled ones, against the
    same training from scratch; both scored on 400 new scenes."""
    import numpy as np

    pre = _train(task, project, epochs)
    print(f"pretrained without labels: embedding spread {pre.best.get('spread', 0):.2f} (0 = collapsed), k-NN top-1 "
          f"on labelled scenes {pre.best.get('knn_top1', 0):.3f}")
    images, labels = make_classification(400, seed=77)
    for name, start in (("from scratch", ""), ("from the pretrained encoder", str(pre.run_dir / "best.pt"))):
        run = _train(str(FEW_LABELS["task"]), project, 0, {**FEW_LABELS, "pretrained": start},
                     f"few_labels_{len(start) > 0}")
        predictions = load(run.run_dir / "best.pt").predict(list(images), batch=100)
        accuracy = float(np.mean([p["index"] == t for p, t in zip(predictions, labels)]))
        print(f"  100 labelled images, {name}: accuracy {accuracy:.3f} on 400 new images")
    print(f"embeddings of any folder: cnnkit embed --weights {pre.run_dir / 'best.pt'} FOLDER --clusters 4 --map tsne")


def demo_identities(task: str, project: Path, epochs: int) -> None:
    """Train on 18 synthetic identities; enrol 3 images of each of the 6 never trained on, search the others."""
    from cnnkit.data.synthetic import write_identities
    from cnnkit.recognition.identify import enrol, search, verify

    data = write_identities(project / "identities", identities=24, per_identity=12)
    result = _train(task, project, epochs, {**_demo(task).recipe, "data": str(data)})
    model = load(result.run_dir / "best.pt")
    unseen = sorted(set(p.name for p in data.iterdir()) - set(model.meta.classes))
    gallery = project / "gallery.npz"
    gallery.unlink(missing_ok=True)
    for name in unseen:
        enrol(model, gallery, name, sorted((data / name).glob("*.png"))[:3])
    queries = [(name, path) for name in unseen for path in sorted((data / name).glob("*.png"))[3:]]
    answers = search(model, gallery, [path for _, path in queries], k=1)
    right = sum(a["matches"][0]["name"] == name for (name, _), a in zip(queries, answers))
    print(f"held-out identities {', '.join(unseen)}: ROC AUC {result.best.get('roc_auc', 0):.3f}, rank-1 "
          f"{result.best.get('rank1', 0):.3f}; threshold {model.meta.value('threshold', 0.0):.3f} (cosine distance)")
    print(f"enrolled 3 images of each in {gallery}; {right}/{len(queries)} other images found their identity")
    a, b = sorted((data / unseen[0]).glob("*.png"))[:2]
    same = verify(model, a, b)
    print(f"verify {a.name} vs {b.name} of {unseen[0]}: {'same' if same['same'] else 'different'} (distance "
          f"{same['distance']:.3f})")
    print(f"next: cnnkit search --weights {result.run_dir / 'best.pt'} --gallery {gallery} IMAGES")


def demo_clicks(task: str, project: Path, epochs: int) -> None:
    """Train a click model on shape scenes, then click on the largest shape of new scenes as the NoC protocol's
    simulated user does: the IoU after each click."""
    import numpy as np

    from cnnkit.annotate import load_clicker
    from cnnkit.data.synthetic import make_scene
    from cnnkit.metrics.clicks import first_click, mask_iou, next_click

    result = _train(task, project, epochs)
    clicker = load_clicker(result.run_dir / "best.pt")
    print("validation: " + " ".join(f"{k}={v:.3f}" for k, v in result.best.items() if k.startswith(("noc", "iou@"))))
    for k in range(3):
        scene = make_scene(k, seed=99, size=_demo(task).size)
        gt = scene.instances[int(np.argmax(scene.instances.sum(axis=(1, 2))))].astype(bool)
        clicks, mask, ious = [first_click(gt)], None, []
        while len(clicks) <= 5 and clicks[-1] is not None:
            mask = clicker(scene.image, [c for c in clicks if c is not None], mask)
            ious.append(mask_iou(mask, gt))
            clicks.append(next_click(gt, mask))
        print(f"  new scene {k}: IoU after each click " + " ".join(f"{v:.2f}" for v in ious))
    print(f"annotate a folder with it: cnnkit annotate FOLDER --weights {result.run_dir / 'best.pt'}")


# DemoSpec.shows -> how the model is shown
SHOWS = {"labels": demo_labels, "pixels": demo_pixels, "objects": demo_objects, "embedding": demo_embedding,
         "identities": demo_identities, "clicks": demo_clicks}


def run_demo(project: Path, epochs: int = 0, tasks: Sequence[str] = ()) -> None:
    """Generate shapes, train, evaluate, predict new images, and say where everything went; ``tasks``: the
    tasks to show (default: those of a plain `cnnkit demo`)."""
    for task in tasks or demo_tasks():
        demo = _demo(task)
        about = demo.about.format(n=len(SHAPE_NAMES))
        print(f"cnnkit demo ({task}): {about} ({', '.join(SHAPE_NAMES)}), synthetic scenes")
        SHOWS[demo.shows](task, project, epochs)

"""``cnnkit demo``: the whole classification job on the built-in synthetic shapes, on a CPU."""

from __future__ import annotations

from pathlib import Path

from cnnkit.api import load
from cnnkit.config import make_config
from cnnkit.data.synthetic import SHAPE_NAMES, make_scene
from cnnkit.engine.trainer import fit

DEMO_RECIPE = {
    "task": "classify", "data": "shapes:3000", "model": "fastnet_small", "imgsz": 32, "epochs": 8, "batch": 128,
    "lr": 0.2, "warmup_epochs": 0.5, "label_smoothing": 0.1, "augment": "light", "channels_last": True,
}


def run_demo(project: Path, epochs: int = 0) -> None:
    """Generate shapes, train, evaluate, predict a few new images, and say where everything went."""
    from PIL import Image

    recipe = dict(DEMO_RECIPE, project=str(project), name="classify", exist_ok=True)
    if epochs:
        recipe["epochs"] = epochs
    print(f"cnnkit demo: {len(SHAPE_NAMES)} shape classes ({', '.join(SHAPE_NAMES)}), synthetic scenes")
    result = fit(make_config(recipe, origin="demo"))

    samples = project / "samples"
    samples.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(6):
        scene = make_scene(900_000 + i, seed=1, size=64)  # scenes the model has never seen
        path = samples / f"{i}_{SHAPE_NAMES[scene.label]}.png"
        Image.fromarray(scene.image).save(path)
        paths.append(path)
    model = load(result.run_dir / "best.pt")
    predictions = model.predict([str(p) for p in paths], topk=3)
    out = project / "predictions"
    out.mkdir(parents=True, exist_ok=True)
    correct = 0
    for path, pred in zip(paths, predictions):
        truth = path.stem.split("_", 1)[1]
        correct += pred["class"] == truth
        model.task.visualise(Image.open(path), pred, model.meta).save(out / path.name)
        print(f"  {path.name}: predicted {pred['class']} ({pred['score']:.2f}), true {truth}")
    print(f"{correct}/{len(paths)} new images right; top-1 on validation {result.best.get('top1', 0):.3f}")
    print(f"run folder {result.run_dir}: " + ", ".join(sorted(p.name for p in result.run_dir.iterdir())))
    print(f"annotated predictions in {out}")

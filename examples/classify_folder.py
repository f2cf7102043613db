"""Train a classifier on an ImageFolder tree with the Python API, then predict new images.

    python examples/classify_folder.py                 # writes a small synthetic tree first
    python examples/classify_folder.py path/to/photos  # your own root/<class>/<image> tree
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import cnnkit
from cnnkit.data.synthetic import write_image_folder


def main() -> None:
    if len(sys.argv) > 1:
        root = Path(sys.argv[1])
    else:
        root = Path(tempfile.mkdtemp()) / "shapes"
        write_image_folder(str(root), {"train": 800, "val": 200}, size=48)
        print(f"wrote a synthetic ImageFolder tree to {root}")
    result = cnnkit.train(data=str(root), model="fastnet_small", imgsz=32, epochs=6, batch=64, lr=0.1,
                          label_smoothing=0.1, val_split=0.2, project=str(root.parent / "runs"))
    model = cnnkit.load(result.run_dir / "best.pt")
    images = sorted(p for p in root.rglob("*") if p.suffix.lower() in {".png", ".jpg", ".jpeg"})[:5]
    for path, pred in zip(images, model.predict([str(p) for p in images], topk=2)):
        print(f"{path.relative_to(root)}: {pred['class']} ({pred['score']:.2f})")


if __name__ == "__main__":
    main()

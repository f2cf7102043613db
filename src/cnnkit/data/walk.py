"""One rule for finding image files, used by every command (train, val, predict, data check, convert).

- An image is a file whose suffix, in any letter case, is one of ``IMAGE_EXTS``.
- Hidden files and folders (a name starting with '.', such as .DS_Store or .ipynb_checkpoints) and
  AppleDouble files (``._photo.jpg``) are skipped.
- Links are followed (a folder of links to a shared data set works); a folder reached twice
  through links is walked once.
- Files are returned sorted by path, so every command sees them in the same order.
What is skipped is counted and said in one line per walk.
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

from cnnkit.log import LOGGER

IMAGE_EXTS = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm"})
IGNORED_NAMES = frozenset({"thumbs.db", "desktop.ini"})  # files operating systems drop into folders


def is_image_file(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_EXTS


def is_hidden(name: str) -> bool:
    return name.startswith(".") or name.lower() in IGNORED_NAMES


def walk_files(folder: Path, recursive: bool = False) -> tuple[list[Path], Counter]:
    """All visible files under ``folder`` (sorted), and the count of what was skipped, by reason."""
    skipped: Counter = Counter()
    found: list[Path] = []
    seen: set[str] = set()
    for top, dirs, files in os.walk(folder, followlinks=True):
        real = os.path.realpath(top)
        if real in seen:  # a link loop, or two links to one folder
            dirs[:] = []
            continue
        seen.add(real)
        hidden_dirs = [d for d in dirs if d.startswith(".")]
        skipped["hidden folders"] += len(hidden_dirs)
        dirs[:] = sorted(d for d in dirs if not d.startswith(".")) if recursive else []
        for name in files:
            if is_hidden(name):
                skipped["hidden files"] += 1
            elif os.path.isfile(os.path.join(top, name)):
                found.append(Path(top) / name)
            else:
                skipped["broken links"] += 1
    return sorted(found), +skipped


def list_images(folder: Path, recursive: bool = False, say: bool = True) -> tuple[list[Path], list[Path]]:
    """(image files, other files) under ``folder`` by the module's rule; skipped files are said once."""
    files, skipped = walk_files(folder, recursive)
    images = [p for p in files if is_image_file(p)]
    others = [p for p in files if not is_image_file(p)]
    if say and skipped:
        LOGGER.info("%s: skipped %s", folder, ", ".join(f"{n} {what}" for what, n in skipped.items()))
    return images, others


def child_dir(root: Path, names: tuple[str, ...]) -> Path | None:
    """The first of ``root``'s sub-folders named in ``names`` (images/, masks/, labels/, ...), or None."""
    return next((root / n for n in names if (root / n).is_dir()), None)


# folders of annotations, not pictures: masks of segment layouts, label maps, CamVid's *_labels / *annot
ANNOTATION_DIRS = ("masks", "mask", "labels", "label", "annotations", "annots", "gt", "groundtruth", "ground_truth")


def is_annotation_folder(folder: str) -> bool:
    """A folder of masks or labels by its name (pretraining and embeddings skip it; a classifier's data
    never has one as a class)."""
    name = folder.lower()
    return name in ANNOTATION_DIRS or name.endswith(("_labels", "_masks", "annot", "_gt"))

"""The layouts pretraining reads (torch-free): images without their labels, from any layout, read by
``cnnkit.data.unlabelled.read_unlabelled``; see ``cnnkit.data.layout``."""

from __future__ import annotations

from pathlib import Path

from cnnkit.data.layout import ANY, MARKER, Layout, csv_file, idx_files, shapes

READER = "cnnkit.data.unlabelled:read_unlabelled"


def _any_folder(root: Path) -> str | None:
    return "a folder of images at any depth (labels, masks and annotations ignored)" if root.is_dir() else None


LAYOUTS = (
    Layout("shapes", "'shapes' or 'shapes:N': the built-in synthetic shapes", shapes, READER, MARKER),
    Layout("IDX", "MNIST-style IDX files: their training images", idx_files, READER, MARKER),
    Layout("CSV", "a .csv whose first column is an image path", csv_file, READER, MARKER),
    # last: it reads whatever the others do not detect
    Layout("images", "a folder of images at any depth; mask and label folders are skipped", _any_folder, READER, ANY),
)

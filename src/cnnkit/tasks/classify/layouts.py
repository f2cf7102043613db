"""The layouts classification reads (torch-free): each detected by names alone, all read by
``cnnkit.data.classify.read_classify``; see ``cnnkit.data.layout``."""

from __future__ import annotations

from pathlib import Path

from cnnkit.data.layout import FOLDERS, MARKER, Layout, csv_file, idx_files, shapes, sub_folders

READER = "cnnkit.data.classify:read_classify"
DESCRIBE = "cnnkit.data.describe:describe_classify"


def _class_folders(root: Path) -> str | None:
    return "folders of images, one per class" if sub_folders(root) else None


def _csv(root: Path) -> str | None:
    return "a .csv of path,label" if csv_file(root) else None


LAYOUTS = (
    Layout("shapes", "'shapes' or 'shapes:N': the built-in synthetic shapes", shapes, READER, MARKER, DESCRIBE),
    Layout("IDX", "MNIST-style IDX files (train-/t10k-images-idx3-ubyte[.gz])", idx_files, READER, MARKER, DESCRIBE),
    Layout("CSV", "a .csv of path,label rows", _csv, READER, MARKER, DESCRIBE),
    # last: it reads whatever the others do not detect, and its errors say what it expected
    Layout("ImageFolder", "one folder of images per class, optionally inside train/, val/, test/", _class_folders,
           READER, FOLDERS, DESCRIBE),
)

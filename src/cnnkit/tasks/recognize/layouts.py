"""The layouts recognition reads (torch-free): classification's, an identity for a class; all read by
``cnnkit.data.classify.read_classify``; see ``cnnkit.data.layout``."""

from __future__ import annotations

from pathlib import Path

from cnnkit.data.layout import FOLDERS, MARKER, Layout, csv_file, idx_files, shapes, sub_folders

READER = "cnnkit.data.classify:read_classify"
DESCRIBE = "cnnkit.data.describe:describe_identities"


def _identity_folders(root: Path) -> str | None:
    return "folders of images, one per identity" if sub_folders(root) else None


def _csv(root: Path) -> str | None:
    return "a .csv of path,identity" if csv_file(root) else None


LAYOUTS = (
    Layout("shapes", "'shapes' or 'shapes:N': the built-in synthetic shapes, a class an identity", shapes, READER,
           MARKER, DESCRIBE),
    Layout("IDX", "MNIST-style IDX files, a class an identity", idx_files, READER, MARKER, DESCRIBE),
    Layout("CSV", "a .csv of path,identity rows", _csv, READER, MARKER, DESCRIBE),
    Layout("ImageFolder", "one folder of images per identity, optionally inside train/, val/, test/",
           _identity_folders, READER, FOLDERS, DESCRIBE),
)

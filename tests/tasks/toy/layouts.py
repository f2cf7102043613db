"""The toy task's own data layout: a folder of grey images marked by a ``toy.txt`` file (torch-free)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cnnkit.data.layout import MARKER, Found, Layout
from cnnkit.data.walk import list_images

MARKER_FILE = "toy.txt"


def _marked(root: Path) -> str | None:
    return f"a {MARKER_FILE} marker beside the images" if (root / MARKER_FILE).is_file() else None


def read_marked(source: str, **_: Any) -> Found:
    """Every image of the marked folder, unsplit: the brightness is computed from the image itself."""
    root = Path(source)
    return Found("toy", root, f"{MARKER_FILE} marker", {"all": list_images(root)[0]}, unit="images")


LAYOUTS = (Layout("toy", "a folder of grey images with a toy.txt marker", _marked,
                  "tests.tasks.toy.layouts:read_marked", MARKER),)

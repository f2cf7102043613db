"""Stand-ins for ``cnnkit.annotate``'s clicker and store with their signatures: fast and deterministic, so
that the page's tests check the page and the routes, not a segmentation method."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from cnnkit.data.synthetic import make_scene
from cnnkit.errors import CnnkitError
from cnnkit.metrics.clicks import Click


class FakeClicker:
    """Disks of ``radius`` px around the positive clicks, less those around the negative ones."""

    name = "fake"

    def __init__(self, radius: int = 8, fail: bool = False) -> None:
        self.radius, self.fail, self.calls = radius, fail, []

    def __call__(self, image: np.ndarray, clicks: Sequence[Click], prev: np.ndarray | None) -> np.ndarray:
        assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
        if self.fail:
            raise CnnkitError("the clicker failed; on purpose")
        self.calls.append((list(clicks), prev))
        yy, xx = np.mgrid[: image.shape[0], : image.shape[1]]
        mask = np.zeros(image.shape[:2], bool)
        for c in clicks:
            disk = (yy - c.y) ** 2 + (xx - c.x) ** 2 <= self.radius**2
            mask = mask | disk if c.positive else mask & ~disk
        return mask


class FakeStore:
    """Objects in memory, masks written to out/masks/<stem>.png (class index per pixel), drafts in a JSON
    file so that a second store over the same ``out`` gets them back."""

    def __init__(self, source: Path, out: Path, classes: Sequence[str], layout: str = "segment") -> None:
        self.source, self.out, self.classes, self.layout = Path(source), Path(out), list(classes), layout
        self.images = sorted(Path(source).glob("*.png"))
        self._objects: dict[int, list[tuple[np.ndarray, str]]] = {}
        self._done: set[int] = set()
        self._drafts = self.out / ".drafts.json"

    def status(self) -> list[dict]:
        return [{"index": i, "name": p.name, "objects": len(self._objects.get(i, [])), "done": i in self._done}
                for i, p in enumerate(self.images)]

    def objects(self, i: int) -> list[dict]:
        return [{"class": name, "area": int(mask.sum())} for mask, name in self._objects.get(i, [])]

    def label_map(self, i: int) -> np.ndarray:
        with Image.open(self.images[i]) as im:
            labels = np.zeros((im.height, im.width), np.uint8)
        for k, (mask, name) in enumerate(self._objects.get(i, [])):
            labels[mask] = k + 1 if self.layout == "instance" else self.classes.index(name) + 1
        return labels

    def accept(self, i: int, mask: np.ndarray, class_name: str) -> Path:
        self._objects.setdefault(i, []).append((mask.copy(), class_name))
        path = self.out / "masks" / f"{self.images[i].stem}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(self.label_map(i)).save(path)
        return path

    def undo(self, i: int) -> bool:
        return bool(self._objects.get(i)) and bool(self._objects[i].pop())

    def mark_done(self, i: int) -> None:
        self._done.add(i)

    def save_draft(self, i: int, clicks: Sequence[Click]) -> None:
        drafts = json.loads(self._drafts.read_text()) if self._drafts.is_file() else {}
        drafts[str(i)] = [[c.y, c.x, c.positive] for c in clicks]
        self._drafts.parent.mkdir(parents=True, exist_ok=True)
        self._drafts.write_text(json.dumps(drafts))

    def draft(self, i: int) -> list[Click]:
        drafts = json.loads(self._drafts.read_text()) if self._drafts.is_file() else {}
        return [Click(y, x, p) for y, x, p in drafts.get(str(i), [])]


def scenes(folder: Path, n: int = 3, size: int = 64) -> Path:
    """``n`` synthetic scenes as scene0.png, scene1.png, ... in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    for k in range(n):
        Image.fromarray(make_scene(k, seed=3, size=size).image).save(folder / f"scene{k}.png")
    return folder

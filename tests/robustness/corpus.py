"""Writers of bad inputs for the robustness corpus: each writes fake files under a folder at test time.

A case is one line in a test module: (id, writer, command line, text the error must name). The
command line uses ``{in}`` for the case's input folder and ``{out}`` for a fresh output folder.
"""

from __future__ import annotations

import hashlib
import json
import struct
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

Writer = Callable[[Path], None]
RNG = np.random.default_rng(0)


def png(path: Path, size: int = 32, mode: str = "RGB", array: np.ndarray | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if array is None:
        shape = (size, size, 3) if mode == "RGB" else (size, size)
        array = RNG.integers(0, 255, shape, dtype=np.uint8)
    Image.fromarray(array).save(path)
    return path


def bomb_png(path: Path, width: int = 30000, height: int = 30000) -> Path:
    """A small file whose header claims ``width`` x ``height`` pixels (a decompression bomb's header)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    body = zlib.compress(b"\0" * (width + 1) * 4)  # a few rows: the rest is "truncated"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", body) + chunk(b"IEND", b""))
    return path


def classify(root: Path, classes: tuple[str, ...] = ("a", "b"), n: int = 6, size: int = 32) -> None:
    for c in classes:
        for i in range(n):
            png(root / c / f"{i}.png", size)


def with_classify(extra: Writer) -> Writer:
    def write(root: Path) -> None:
        classify(root)
        extra(root)
    return write


def segment(root: Path, n: int = 6, size: int = 32, mask: Callable[[int], np.ndarray] | None = None,
            ext: str = ".png") -> None:
    for i in range(n):
        png(root / "images" / f"{i}.png", size)
        array = mask(i) if mask else RNG.integers(0, 3, (size, size), dtype=np.uint8)
        path = root / "masks" / f"{i}{ext}"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(array).save(path)


def instance_maps(root: Path, n: int = 4, size: int = 32, id_map: Callable[[int], np.ndarray] | None = None,
                  ext: str = ".png") -> None:
    for i in range(n):
        png(root / "images" / f"{i}.png", size)
        array = id_map(i) if id_map else _blobs(size)
        path = root / "masks" / f"{i}{ext}"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(array).save(path)


def _blobs(size: int) -> np.ndarray:
    m = np.zeros((size, size), np.uint8)
    m[2:10, 2:10], m[15:25, 12:30] = 1, 2
    return m


def coco(root: Path, images: list[dict] | None = None, anns: list[dict] | None = None,
         cats: list[dict] | None = None, raw: str | None = None) -> None:
    """``annotations.json`` + ``images/`` of two 32 px images with one square each, fields overridable."""
    for i in range(2):
        png(root / "images" / f"{i}.png")
    images = images if images is not None else [{"id": i, "file_name": f"{i}.png", "height": 32, "width": 32}
                                                for i in range(2)]
    anns = anns if anns is not None else [{"id": i + 1, "image_id": i, "category_id": 1, "iscrowd": 0,
                                           "bbox": [4, 4, 10, 10],
                                           "segmentation": [[4, 4, 14, 4, 14, 14, 4, 14]]} for i in range(2)]
    cats = cats if cats is not None else [{"id": 1, "name": "square"}]
    text = raw if raw is not None else json.dumps({"images": images, "annotations": anns, "categories": cats})
    (root / "annotations.json").write_text(text)


def coco_with(images: list[dict] | None = None, anns: list[dict] | None = None, cats: list[dict] | None = None,
              raw: str | None = None) -> Writer:
    return lambda root: coco(root, images, anns, cats, raw)


def ann(**changes) -> list[dict]:
    """The default COCO annotations, with ``changes`` applied to the first (None deletes a key)."""
    return _first_changed([{"id": i + 1, "image_id": i, "category_id": 1, "iscrowd": 0, "bbox": [4, 4, 10, 10],
                            "segmentation": [[4, 4, 14, 4, 14, 14, 4, 14]]} for i in range(2)], changes)


def image_entries(**changes) -> list[dict]:
    """The default COCO images, with ``changes`` applied to the first (None deletes a key)."""
    return _first_changed([{"id": i, "file_name": f"{i}.png", "height": 32, "width": 32} for i in range(2)], changes)


def _first_changed(entries: list[dict], changes: dict) -> list[dict]:
    for key, value in changes.items():
        if value is None:
            del entries[0][key]
        else:
            entries[0][key] = value
    return entries


def yolo(lines: str) -> Writer:
    """``images/`` + ``labels/`` (first label file holds ``lines``) + ``data.yaml`` with one name."""
    def write(root: Path) -> None:
        for i in range(3):
            png(root / "images" / f"{i}.png")
            (root / "labels").mkdir(parents=True, exist_ok=True)
            (root / "labels" / f"{i}.txt").write_text(lines if i == 0 else "0 0.5 0.5 0.2 0.2\n")
        (root / "classes.txt").write_text("thing\n")
    return write


def text_file(name: str, content: str | bytes) -> Writer:
    def write(root: Path) -> None:
        root.mkdir(parents=True, exist_ok=True)
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return write


def nothing(root: Path) -> None:
    root.mkdir(parents=True, exist_ok=True)


def snapshot(root: Path) -> dict[str, tuple[str, int]]:
    """Every file under ``root``: its content digest and mode (an input must not change)."""
    if not root.exists():
        return {}
    return {str(p.relative_to(root)): (hashlib.sha1(p.read_bytes()).hexdigest(), p.stat().st_mode)
            for p in sorted(root.rglob("*")) if p.is_file()}

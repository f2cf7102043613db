"""IDX files (MNIST, Fashion-MNIST), gzip-compressed or not, as torchvision and most tools read them."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

from cnnkit.errors import CnnkitError

_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
FASHION_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                   "Ankle boot"]
SPLITS = {"train": "train", "val": "t10k"}


def read_idx(path: Path) -> np.ndarray:
    """Read one IDX file into an array of its stored shape and dtype."""
    try:
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError, gzip.BadGzipFile) as e:
        raise CnnkitError(f"{path}: cannot read IDX file ({e}); re-download it") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _DTYPES:
        raise CnnkitError(f"{path}: not an IDX file (bad magic number); expected MNIST-style IDX data")
    ndim = raw[3]
    dims = np.frombuffer(raw, ">i4", count=ndim, offset=4).astype(int)
    data = np.frombuffer(raw, _DTYPES[raw[2]], offset=4 + 4 * ndim)
    if data.size != int(np.prod(dims)):
        raise CnnkitError(f"{path}: truncated IDX file ({data.size} of {int(np.prod(dims))} values); re-download it")
    return data.reshape(*dims)


def find_idx(folder: Path, prefix: str, kind: str) -> Path | None:
    for name in (f"{prefix}-{kind}-idx{3 if kind == 'images' else 1}-ubyte", f"{prefix}-{kind}.idx"):
        for cand in (folder / name, folder / f"{name}.gz"):
            if cand.is_file():
                return cand
    return None


def is_idx_folder(folder: Path) -> bool:
    return folder.is_dir() and find_idx(folder, "train", "images") is not None


def load_idx_split(folder: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """Images ``(N, 28, 28, 1)`` uint8 and labels ``(N,)`` int64 of ``split`` ('train' or 'val')."""
    prefix = SPLITS[split]
    img_path, lab_path = find_idx(folder, prefix, "images"), find_idx(folder, prefix, "labels")
    if img_path is None or lab_path is None:
        raise CnnkitError(f"{folder}: missing {prefix}-images/labels IDX files; expected the MNIST file names")
    images, labels = read_idx(img_path), read_idx(lab_path).astype(np.int64)
    if len(images) != len(labels):
        raise CnnkitError(f"{img_path}: {len(images)} images but {len(labels)} labels in {lab_path.name}")
    return images.reshape(len(images), images.shape[1], images.shape[2], -1).astype(np.uint8), labels


def idx_class_names(folder: Path, num_classes: int) -> list[str]:
    names_file = folder / "classes.txt"
    if names_file.is_file():
        return [line.strip() for line in names_file.read_text().splitlines() if line.strip()]
    if "fashion" in folder.resolve().name.lower() and num_classes == 10:
        return list(FASHION_CLASSES)
    return [str(i) for i in range(num_classes)]

"""Images without labels, for self-supervised pretraining and embeddings.

``find_unlabelled(source)`` takes any layout cnnkit reads and returns its images, ignoring labels:
a folder of images at any depth (class folders, split folders, ``images/`` beside ``masks/``: mask
and label folders are skipped), a CSV of path[,label], an IDX folder (its training images), or
'shapes'. ``ViewsDataset`` yields each image as several views from the method's augmentations.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset
from torchvision.transforms import v2

from cnnkit.data import idx
from cnnkit.data.images import read_image
from cnnkit.data.request import DataRequest
from cnnkit.data.splits import Splits, hold_out
from cnnkit.data.synthetic import is_shapes, make_classification, shapes_count
from cnnkit.data.walk import is_annotation_folder, list_images
from cnnkit.errors import CnnkitError
from cnnkit.log import LOGGER

TEST_DIRS = ("test", "testing")  # a split layout's test part: kept for scoring, not pretrained on


@dataclass
class Unlabelled:
    """Images as one ``(N, H, W, C)`` uint8 array, or as file paths (read on use)."""

    items: np.ndarray | list[Path]
    origin: str

    def __len__(self) -> int:
        return len(self.items)


def _csv_paths(path: Path) -> list[Path]:
    with path.open(newline="") as f:
        rows = [r for r in csv.reader(f) if r and r[0].strip()]
    if rows and not Path(rows[0][0]).suffix:  # a header row
        rows = rows[1:]
    return [p if p.is_absolute() else path.parent / p for p in (Path(r[0].strip()) for r in rows)]


def find_unlabelled(source: str, seed: int = 0) -> Unlabelled:
    """Every image of ``source`` (labels, masks and annotations ignored); CnnkitError if there are none."""
    if is_shapes(source):
        images, _ = make_classification(shapes_count(source, default=2000, least=8), seed=seed)
        return Unlabelled(images, source)
    path = Path(source)
    if not source:
        raise CnnkitError("no data given; pass --data with a folder of images, a CSV, an IDX folder or 'shapes'")
    if not path.exists():
        raise CnnkitError(f"{path}: not found; pass an existing folder of images (any layout) to --data")
    if idx.is_idx_folder(path):
        LOGGER.info("found: IDX layout in %s; pretraining on its training images (labels ignored)", path)
        return Unlabelled(idx.load_idx_split(path, "train")[0], source)
    if path.is_file():
        if path.suffix.lower() != ".csv":
            raise CnnkitError(f"{path}: unsupported data file; pass a folder of images, a .csv of paths, or an IDX "
                              "folder")
        return Unlabelled(_csv_paths(path), source)
    kept = image_files(path)
    tests = [p for p in kept if p.relative_to(path).parts[0].lower() in TEST_DIRS]
    if tests and len(tests) < len(kept):
        LOGGER.info("%s: the %d images of its test split are left out (they score the fine-tuned model; pretraining "
                    "on them would let it see them first)", path, len(tests))
        kept = [p for p in kept if p not in set(tests)]
    if not kept:
        raise CnnkitError(f"{path}: no images found (looked in every sub-folder except mask and label folders); "
                          "point --data at a folder of images")
    return Unlabelled(kept, source)


def image_files(folder: Path) -> list[Path]:
    """The images of ``folder`` at any depth, except those in mask and label folders (said in the log)."""
    images, _ = list_images(folder, recursive=True)
    kept = [p for p in images if not any(is_annotation_folder(part) for part in p.relative_to(folder).parts[:-1])]
    if len(kept) < len(images):
        LOGGER.info("%s: %d images, %d in mask or label folders skipped", folder, len(kept), len(images) - len(kept))
    return kept


def joint_views(channels: int, size: int) -> v2.Compose:
    """SimCLR's augmentations for ``(C, H, W)`` uint8: random crop of 20-100% of the area, flip, colour
    jitter (brightness and contrast only for grey), grey conversion, and blur on images of 64 px or more."""
    ops: list = [v2.RandomResizedCrop(size, scale=(0.2, 1.0), antialias=True), v2.RandomHorizontalFlip()]
    if channels == 3:
        ops += [v2.RandomApply([v2.ColorJitter(0.4, 0.4, 0.4, 0.1)], p=0.8), v2.RandomGrayscale(0.2)]
    elif channels == 1:
        ops.append(v2.RandomApply([v2.ColorJitter(0.4, 0.4)], p=0.8))
    else:
        ops.append(v2.RandomApply([v2.ColorJitter(0.4)], p=0.8))
    if size >= 64:
        ops.append(v2.RandomApply([v2.GaussianBlur(size // 20 * 2 + 1, sigma=(0.1, 2.0))], p=0.5))
    return v2.Compose(ops)


def reconstruction_view(size: int) -> v2.Compose:
    """For the masked autoencoder: a milder crop (50-100% of the area) and a flip; the mask does the rest."""
    return v2.Compose([v2.RandomResizedCrop(size, scale=(0.5, 1.0), antialias=True), v2.RandomHorizontalFlip()])


class ViewsDataset(Dataset):
    """Item ``i``: (views ``(V, C, S, S)`` uint8, label or -1). With ``plain`` the first view is the image
    itself, resized (evaluation: its embedding is scored); then ``n_views`` draws of ``augment``."""

    def __init__(self, items: torch.Tensor | list[Path], channels: int, size: int, augment: Callable | None,
                 n_views: int, plain: bool = False, labels: np.ndarray | None = None, high: float = 0.0):
        self.items, self.channels, self.size, self.high = items, channels, size, high
        self.augment, self.n_views, self.plain = augment, n_views, plain
        self.labels = labels

    def __len__(self) -> int:
        return len(self.items)

    def source_images(self) -> list:
        """The image files (none when the images came decoded: IDX, shapes)."""
        return [] if isinstance(self.items, torch.Tensor) else list(self.items)

    def image(self, i: int) -> torch.Tensor:
        item = self.items[i]
        if isinstance(item, torch.Tensor):
            return item
        return torch.from_numpy(read_image(item, self.channels, self.size, self.high)).permute(2, 0, 1)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        image = self.image(i)
        views = [image] if self.plain else []
        if self.augment is not None:
            views += [self.augment(image) for _ in range(self.n_views)]
        label = -1 if self.labels is None else int(self.labels[i])
        return torch.stack(views), label


CACHE_LIMIT_BYTES = 2 * 1024**3  # above this, 'auto' reads the images from disk at each use


def as_tensor(array: np.ndarray, channels: int, size: int, chunk: int = 256) -> torch.Tensor:
    """``(N, H, W, C)`` uint8 -> ``(N, channels, size, size)`` uint8 (grey repeated, bilinear resize).

    Resized a chunk at a time, so the float copy stays small; a result larger than the memory available
    is refused naming --imgsz (allocating it got the process killed without a word)."""
    from cnnkit.device import available_memory

    images = torch.from_numpy(array).permute(0, 3, 1, 2)
    if images.shape[1] != channels:
        images = images.expand(-1, channels, -1, -1) if images.shape[1] == 1 else images[:, :channels]
    if images.shape[-2:] == (size, size):
        return images.contiguous()
    need, available = len(images) * channels * size * size, available_memory()
    if available and need > available:
        fits = math.isqrt(int(0.5 * available) // max(1, len(images) * channels))
        raise CnnkitError(f"--imgsz {size}: the {len(images)} images at {size} px take {need / 1e9:.1f} GB in "
                          f"memory and this machine has {available / 1e9:.1f} GB available; use --imgsz {fits} or less")
    out = torch.empty((len(images), channels, size, size), dtype=torch.uint8)
    for start in range(0, len(images), chunk):
        part = images[start:start + chunk].float()
        out[start:start + chunk] = torch.nn.functional.interpolate(part, size=(size, size), mode="bilinear",
                                                                   antialias=True).round().clamp(0, 255)
    return out


def load_images(found: Unlabelled, channels: int, size: int, cache: str, skip_bad: bool, high: float = 0.0
                ) -> tuple[torch.Tensor | list[Path], list[Path]]:
    """The images decoded at ``size`` into one tensor, or (too many for RAM, or ``cache='none'``) the paths of
    the readable ones; and the files of those images (none for arrays: IDX, shapes). Unreadable files stop
    with their names unless ``skip_bad``."""
    from cnnkit.data.images import decode_all, verify_all

    if isinstance(found.items, np.ndarray):
        return as_tensor(found.items, channels, size), []
    paths = found.items
    if cache == "ram" or (cache == "auto" and len(paths) * channels * size * size <= CACHE_LIMIT_BYTES):
        arrays, errors = decode_all(paths, channels, size, skip_bad, high=high, stop=False)
    else:
        bad = verify_all(paths, skip_bad, stop=False)
        arrays, errors = [None if p in bad else p for p in paths], list(bad.values())
    if errors and not skip_bad:
        raise CnnkitError(f"{len(errors)} unreadable image(s), the first: {errors[0]}; fix or remove them, or pass "
                          "--skip-bad to skip them")
    kept = [a for a in arrays if a is not None]
    if not kept:
        raise CnnkitError(f"{found.origin}: no readable images")
    files = [p for p, a in zip(paths, arrays) if a is not None]
    if isinstance(kept[0], Path):
        return files, files
    return torch.from_numpy(np.stack(kept)).permute(0, 3, 1, 2).contiguous(), files  # type: ignore[arg-type]


def split_images(images: torch.Tensor | list[Path], files: list[Path], request: DataRequest, fraction: float
                 ) -> Splits[torch.Tensor | list[Path]]:
    """Train and val of unlabelled images by the hold-out every task uses (``cnnkit.data.splits.hold_out``):
    whole groups with ``--val-group``, else ``fraction`` at random (at least two when there are four or
    more images: the joint-embedding losses compare images within a batch)."""
    if request.val_group and not files:
        raise CnnkitError(f"--val-group {request.val_group!r}: {request.source} has no file names to find groups "
                          "in (IDX or synthetic images); drop --val-group, or pass --val with labelled images")
    names = [str(p) for p in files] or [str(i) for i in range(len(images))]
    train, val = hold_out(names, fraction, request.seed, request.source, request.val_group, least=2)

    def pick(index: np.ndarray) -> torch.Tensor | list[Path]:
        if isinstance(images, torch.Tensor):
            return images[torch.from_numpy(index)]
        return [images[int(i)] for i in index]
    return Splits(train=pick(train), val=pick(val))


DEFAULT_SIDE = 96  # pretraining side for images of mixed or large sizes: crops of this size train fast on a CPU


def native_side(found: Unlabelled) -> int:
    """The images' own side (the longer one) when they share one size up to 128 px; else ``DEFAULT_SIDE``."""
    from cnnkit.data import images

    if isinstance(found.items, np.ndarray):
        h, w = found.items.shape[1:3]
        sizes = {(int(w), int(h))}
    else:
        sizes = images.image_sizes(found.items, 32)
    return images.native_side(sizes, 128, DEFAULT_SIDE, "pretraining")

"""The data of click models: pictures (an image and its objects) read through the segment and instance loaders
of ``cnnkit.data``, a training set of one object per item, and a validation set of whole images.

Images are read at full size; training works at the working size (``max_size``), validation at full size (the
NoC protocol places its clicks on each image's own pixels, as ``predict_clicks`` takes them).

A validation item packs the image and its objects into one ``(C + 1, H, W)`` int32 tensor: channels 0..C-1 the
image (0..255), channel C the object map (0 no object, -1 ignored, k > 0 object k to score): the engine's
``evaluate`` hands the model's forward the images alone, and the clicker must see each object's truth.
``infer.noc_forward`` takes it apart.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from cnnkit.data.images import pil_to_array, read_image, scaled_size
from cnnkit.data.instance import Objects
from cnnkit.data.instance_data import load_instance_data
from cnnkit.data.layout import Layout, choose
from cnnkit.data.masks import ClassSpec
from cnnkit.data.request import DataRequest
from cnnkit.data.segment import image_size, load_segment_data
from cnnkit.data.splits import SplitPlan
from cnnkit.errors import CnnkitError
from cnnkit.metrics.clicks import click_maps
from cnnkit.tasks.click.sampling import (
    background_classes,
    crop_object,
    instance_objects,
    object_areas,
    random_clicks,
    scale_image,
    scale_objects,
    segment_objects,
)

TRIES = 20  # images drawn for a training item before a data set without objects is refused


@dataclass
class Picture:
    """One image and its objects: an image file or ``(H, W, C)`` uint8 array, and a class mask (file or ids)
    or an instance segmentation's ``Objects``."""

    image: Path | np.ndarray
    labels: Path | np.ndarray | Objects


@dataclass
class Reader:
    """How the pictures of one data set read: channels, 16-bit range, and for class masks their classes."""

    channels: int
    high: float = 0.0
    spec: ClassSpec | None = None  # class masks: their classes; None: instance data
    background: frozenset[int] = frozenset()  # class ids that are no object

    def image(self, picture: Picture) -> np.ndarray:
        """``(H, W, C)`` uint8 at full size."""
        if isinstance(picture.image, (str, Path)):
            return read_image(picture.image, self.channels, high=self.high)
        image = picture.image
        if image.shape[-1] != self.channels:
            image = pil_to_array(Image.fromarray(image.squeeze(-1) if image.shape[-1] == 1 else image), self.channels)
        return image

    def objects(self, picture: Picture) -> np.ndarray:
        """``(H, W)`` int32 object map at full size (``sampling``: 0 none, -1 ignored, k object k)."""
        if isinstance(picture.labels, Objects):
            return instance_objects(picture.labels)
        assert self.spec is not None  # class masks come with their classes
        return segment_objects(picture.labels, self.spec, self.background)

    def size(self, picture: Picture) -> tuple[int, int]:
        """(W, H) at full size, from the file's header where it is a file."""
        if isinstance(picture.image, (str, Path)):
            return image_size(Path(picture.image))
        return picture.image.shape[1], picture.image.shape[0]


@dataclass
class ClickData:
    """The splits as pictures, how they read, and what the card records of them."""

    train: list[Picture] | None
    val: list[Picture]
    test: list[Picture] | None
    reader: Reader
    plan: SplitPlan | None
    layout: str


def load_click_data(request: DataRequest, layouts: Sequence[Layout], object_layouts: Sequence[Layout],
                    ignore_index: int = 255, classes_file: str = "") -> ClickData:
    """The data set at ``request.source`` in any of ``layouts`` (those of ``object_layouts`` read as instance
    data, the others as class masks), at full size (the request's ``max_size`` is not applied)."""
    layout, _ = choose(layouts, Path(request.source))
    if layout in object_layouts:
        found = load_instance_data(request, layouts=[layout])
        if not any(item.objects.has_masks for item in (found.train or found.val)[:50]):
            raise CnnkitError(f"{request.source}: the annotations have boxes but no masks; a click model learns "
                              "masks: give masks (COCO polygons, YOLO-seg, instance maps)")
        reader = Reader(found.channels, found.high)
        parts = found.map(lambda _, items: [Picture(i.image, i.objects) for i in items])
        return ClickData(parts.train, parts.val, parts.test, reader, found.plan, found.layout)
    data = load_segment_data(request, classes_file=classes_file, ignore_index=ignore_index, layouts=[layout])
    reader = Reader(data.channels, data.high, data.spec, frozenset(background_classes(data.spec)))
    parts = data.map(lambda _, split: [Picture(i, m) for i, m in zip(split.images, split.masks)])
    return ClickData(parts.train, parts.val, parts.test, reader, data.plan, layout.name)


def working_size(size: tuple[int, int], max_size: int) -> tuple[int, int]:
    """(H, W) at the working size of an image of ``size`` (H, W)."""
    w, h = scaled_size(size[1], size[0], max_size)
    return h, w


class ClickTrainSet(Dataset):
    """Yields ``(image (C, h, w) uint8, {"mask": (h, w) uint8 1 object / 0 not / 255 ignored, "clicks": (2, h, w)
    uint8 disks of the positive and negative clicks})``: a random object (of at least ``min_area`` px at the
    working size) of image ``i``, in a ``crop`` window holding it, with its random first clicks."""

    def __init__(self, pictures: list[Picture], reader: Reader, max_size: int, crop: tuple[int, int],
                 preset: str, min_area: int, radius: float):
        self.pictures, self.reader, self.max_size, self.crop = pictures, reader, max_size, crop
        self.preset, self.min_area, self.radius = preset, min_area, radius

    def __len__(self) -> int:
        return len(self.pictures)

    def source_images(self) -> list:
        return [p.image for p in self.pictures]

    def working(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """Image ``i`` and its object map at the working size."""
        picture = self.pictures[i]
        image, objects = self.reader.image(picture), self.reader.objects(picture)
        size = working_size(image.shape[:2], self.max_size)
        return scale_image(image, size), scale_objects(objects, size)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        rng = np.random.default_rng([int(torch.randint(0, 2**31, ()).item()), i])
        for _ in range(TRIES):
            image, objects = self.working(i)
            areas = [k for k, a in object_areas(objects).items() if a >= self.min_area]
            if areas:
                target = int(rng.choice(areas))
                picture, mask = crop_object(image, objects, target, self.crop, self.preset, rng)
                if not (mask == 1).any():  # a sliver zoomed out to nothing: this object at its own scale
                    picture, mask = crop_object(image, objects, target, self.crop, "none", rng)
                clicks = random_clicks(mask, rng)
                maps = click_maps(clicks, self.crop, self.radius).astype(np.uint8)
                return (torch.from_numpy(picture).permute(2, 0, 1).contiguous(),
                        {"mask": torch.from_numpy(mask), "clicks": torch.from_numpy(maps)})
            i = int(rng.integers(len(self.pictures)))
        raise CnnkitError(f"no object of at least {self.min_area} px in {TRIES} training images drawn at random; "
                          "check the masks, or lower --min-area")


class ClickValSet(Dataset):
    """Yields ``(packed (C + 1, H, W) int32, objects (scalar int64))`` per image at full size (see the module's
    docstring): the image and the map of the objects to score (at least ``min_area`` px at the working size; up
    to ``limit`` over the split, drawn with ``seed``, 0 = all). Images without such objects are left out."""

    def __init__(self, pictures: list[Picture], reader: Reader, max_size: int, min_area: int, limit: int = 0,
                 seed: int = 0):
        self.pictures, self.reader = pictures, reader
        found: list[tuple[int, int]] = []
        for i, picture in enumerate(pictures):
            objects = reader.objects(picture)
            h, w = working_size(objects.shape, max_size)
            factor = (h * w) / objects.size
            found += [(i, k) for k, a in object_areas(objects).items() if a * factor >= min_area]
        if not found:
            raise CnnkitError(f"no object of at least {min_area} px (at the working size) in the {len(pictures)} "
                              "images to score; check the masks, or lower --min-area")
        if limit and len(found) > limit:
            pick = np.random.default_rng(seed).choice(len(found), limit, replace=False)
            found = [found[j] for j in sorted(pick)]
        chosen: dict[int, list[int]] = {}
        for i, k in found:
            chosen.setdefault(i, []).append(k)
        self.chosen = sorted(chosen.items())

    def __len__(self) -> int:
        return len(self.chosen)

    @property
    def objects(self) -> int:
        return sum(len(ids) for _, ids in self.chosen)

    def source_images(self) -> list:
        return [self.pictures[i].image for i, _ in self.chosen]

    def __getitem__(self, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        i, ids = self.chosen[k]
        image, objects = self.reader.image(self.pictures[i]), self.reader.objects(self.pictures[i])
        scored = np.where(np.isin(objects, ids), objects, np.minimum(objects, 0))  # the others: not the object
        packed = np.concatenate([image.astype(np.int32), scored[..., None]], -1)
        return torch.from_numpy(packed).permute(2, 0, 1).contiguous(), torch.tensor(len(ids))


def list_collate(batch: list[tuple[torch.Tensor, Any]]) -> tuple[list[torch.Tensor], list[Any]]:
    """Validation images of any sizes stay a list."""
    return [b[0] for b in batch], [b[1] for b in batch]


def crop_side(reader: Reader, pictures: list[Picture], imgsz: int, max_size: int, default: int) -> int:
    """The training crop side: ``imgsz``, else ``default`` or the longest working side of (up to 64 of) the
    images where that is smaller (small images are not padded out to a large crop)."""
    if imgsz:
        return imgsz
    sides = [max(working_size(reader.size(p)[::-1], max_size)) for p in pictures[:64]]
    return min(default, max(sides))

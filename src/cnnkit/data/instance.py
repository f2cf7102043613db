"""Instance data: the objects of one image, rasterised only inside the window a sample needs, and
the dataset, joint transforms and collate for the instance and detect tasks.

Objects come from instance maps (one id per object), from shapes (COCO or YOLO polygons, COCO RLE,
or boxes alone) or from one binary PNG per object. Training samples crop a window first and
rasterise the objects inside it only, so an image with hundreds of objects stays cheap.

Targets follow torchvision's detection models: ``boxes`` (N, 4) float xyxy in pixels (x2, y2
exclusive), ``labels`` (N,) int64 with 0 for background (class index + 1), ``masks`` (N, H, W)
uint8, and ``iscrowd`` (N,) for evaluation.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

import numpy as np
import torch
from PIL import Image
from pycocotools import mask as mask_util
from torch.utils.data import Dataset
from torchvision import tv_tensors
from torchvision.transforms import v2

from cnnkit.data.images import read_image
from cnnkit.data.transforms import resize_mask
from cnnkit.errors import CnnkitError

MIN_PIXELS = 4  # an object with fewer visible pixels after a crop is dropped from the sample
Window = tuple[int, int, int, int]  # top, left, height, width in source pixels (may extend past the image)


def slice_padded(array: np.ndarray, window: Window) -> np.ndarray:
    """``array[top:top+h, left:left+w]`` with zeros where the window leaves the array."""
    top, left, h, w = window
    out = np.zeros((h, w, *array.shape[2:]), array.dtype)
    y0, x0 = max(top, 0), max(left, 0)
    y1, x1 = min(top + h, array.shape[0]), min(left + w, array.shape[1])
    if y1 > y0 and x1 > x0:
        out[y0 - top:y1 - top, x0 - left:x1 - left] = array[y0:y1, x0:x1]
    return out


def read_id_map(path: Path) -> np.ndarray:
    """An 8- or 16-bit instance map PNG -> (H, W) int32 ids (0 background); negative ids are refused."""
    with Image.open(path) as im:
        ids = np.asarray(im).astype(np.int32) if im.mode != "RGB" else _rgb_ids(np.asarray(im))
    if ids.size and ids.min() < 0:
        raise CnnkitError(f"{path}: negative ids in an instance map ({int(ids.min())}); ids are 0 (background) and "
                          "1, 2, ... one per object: re-export it")
    return ids


def _rgb_ids(rgb: np.ndarray) -> np.ndarray:
    """Colour-coded instance maps: each distinct colour one object, black background."""
    packed = (rgb[..., 0].astype(np.int32) << 16) | (rgb[..., 1].astype(np.int32) << 8) | rgb[..., 2]
    return np.unique(packed, return_inverse=True)[1].reshape(packed.shape).astype(np.int32) * (packed.max() > 0)


@dataclass
class Objects:
    """The annotated objects of one image; ``window`` rasterises those inside a window.

    Exactly one source is set: ``id_map`` (a path or an (H, W) array of ids, with ``map_classes``
    id -> class index, default 0), ``shapes`` (per object: a list of polygons, each a flat
    [x0, y0, x1, y1, ...] list; a COCO RLE dict; or None for a box alone), or ``mask_files``.
    """

    size: tuple[int, int]  # (H, W) of the image
    id_map: Path | np.ndarray | None = None
    map_classes: dict[int, int] = field(default_factory=dict)
    shapes: list | None = None
    mask_files: list[Path] | None = None
    boxes: np.ndarray | None = None  # (N, 4) xyxy; given with shapes or mask files
    labels: np.ndarray | None = None  # (N,) class indices
    crowd: np.ndarray | None = None  # (N,) bool

    @property
    def has_masks(self) -> bool:
        return self.id_map is not None or self.mask_files is not None or (
            self.shapes is not None and any(s is not None for s in self.shapes))

    def window(self, win: Window, masks: bool = False) -> dict[str, np.ndarray]:
        """Objects visible in ``win``: masks (N, h, w) uint8 (absent for boxes-only data unless
        ``masks``: then a box without a mask is its own mask), boxes (N, 4) float in window pixels,
        labels (N,), crowd (N,)."""
        if self.id_map is not None:
            return self._from_map(win)
        top, left, h, w = win
        keep = _overlapping(self.boxes, win)  # no id map: boxes, labels and crowd are given
        boxes = cast(np.ndarray, self.boxes)[keep] - np.array([left, top, left, top], np.float32)
        out = {"labels": cast(np.ndarray, self.labels)[keep], "crowd": cast(np.ndarray, self.crowd)[keep],
               "boxes": np.clip(boxes, 0, [w, h, w, h]).astype(np.float32)}
        if self.has_masks or masks:
            found = [self._mask(int(i), win) for i in np.flatnonzero(keep)]
            out["masks"] = np.stack(found) if found else np.zeros((0, h, w), np.uint8)
        return out

    def _from_map(self, win: Window) -> dict[str, np.ndarray]:
        ids_map = read_id_map(self.id_map) if isinstance(self.id_map, Path) else self.id_map
        crop = slice_padded(ids_map, win)
        ids = np.unique(crop)
        ids = ids[ids > 0]
        masks = (crop[None] == ids[:, None, None]).astype(np.uint8)
        labels = np.array([self.map_classes.get(int(i), 0) for i in ids], np.int64)
        return {"masks": masks, "labels": labels, "crowd": np.zeros(len(ids), bool),
                "boxes": masks_to_boxes_np(masks)}

    def _mask(self, i: int, win: Window) -> np.ndarray:
        top, left, h, w = win
        if self.mask_files is not None:
            with Image.open(self.mask_files[i]) as im:
                return slice_padded((np.asarray(im.convert("L")) > 0).astype(np.uint8), win)
        shape = self.shapes[i] if self.shapes is not None else None
        if shape is None:  # a box without a mask in data that has masks: its box is the mask
            mask = np.zeros((h, w), np.uint8)
            x0, y0, x1, y1 = (np.round(cast(np.ndarray, self.boxes)[i]) - [left, top, left, top]).astype(int)
            mask[max(y0, 0):max(y1, 0), max(x0, 0):max(x1, 0)] = 1
            return mask
        if isinstance(shape, dict):  # RLE covers the whole image
            return slice_padded(mask_util.decode(rle_of(shape, self.size)), win)
        shifted = [(np.asarray(p, np.float64).reshape(-1, 2) - [left, top]).ravel().tolist() for p in shape]
        return mask_util.decode(mask_util.merge(mask_util.frPyObjects(shifted, h, w)))


def rle_of(shape: dict, size: tuple[int, int]) -> dict:
    """A COCO RLE (compressed, or uncompressed with a counts list) in compressed form."""
    if isinstance(shape.get("counts"), list):
        return mask_util.frPyObjects(shape, *shape.get("size", size))
    return shape


def _overlapping(boxes: np.ndarray, win: Window) -> np.ndarray:
    top, left, h, w = win
    return (boxes[:, 0] < left + w) & (boxes[:, 2] > left) & (boxes[:, 1] < top + h) & (boxes[:, 3] > top)


def masks_to_boxes_np(masks: np.ndarray) -> np.ndarray:
    """(N, H, W) masks -> (N, 4) float32 xyxy boxes enclosing whole pixels (x2, y2 exclusive)."""
    boxes = np.zeros((len(masks), 4), np.float32)
    for i, m in enumerate(masks):
        ys, xs = np.flatnonzero(m.any(1)), np.flatnonzero(m.any(0))
        if len(ys):
            boxes[i] = xs[0], ys[0], xs[-1] + 1, ys[-1] + 1
    return boxes


@dataclass(frozen=True)
class CocoOrigin:
    """The COCO file items were read from, and its category id of each class (class order): results are
    written in that file's ids, so that they score against it as they are."""

    file: Path
    category_ids: tuple[int | None, ...]  # None for a class the file does not name


@dataclass
class InstanceItem:
    image: Path | np.ndarray  # a file, or an (H, W, C) uint8 array
    objects: Objects
    coco: CocoOrigin | None = None  # read from a COCO file: which, and its category ids


# preset -> (scale range, horizontal flip, vertical flip, colour jitter)
PRESETS = {
    "none": ((1.0, 1.0), False, False, 0.0),
    "light": ((0.8, 1.25), True, False, 0.0),
    "standard": ((0.67, 1.5), True, True, 0.2),
    "strong": ((0.5, 2.0), True, True, 0.3),
}


class ShiftJitter(v2.Transform):
    """Strong colour jitter and, one time in five, grey conversion, for RGB images; brightness and contrast
    only for grey ones (hue and saturation need three channels)."""

    def __init__(self) -> None:
        super().__init__()
        self.colour = v2.Compose([v2.ColorJitter(0.4, 0.4, 0.6, 0.2), v2.RandomGrayscale(0.2)])
        self.grey = v2.ColorJitter(0.4, 0.4)

    def forward(self, sample: dict) -> dict:
        return (self.colour if sample["image"].shape[-3] == 3 else self.grey)(sample)


class InstanceTransform:
    """Scale jitter and a random crop of ``crop`` (H, W) pixels, then flips and colour jitter, on the
    image, masks and boxes together (transforms.v2 with tv_tensors)."""

    def __init__(self, preset: str, crop: tuple[int, int], shift: bool = False):
        self.scale, hflip, vflip, jitter = PRESETS[preset]
        self.crop = crop
        ops: list[v2.Transform] = []
        if hflip:
            ops.append(v2.RandomHorizontalFlip())
        if vflip:
            ops.append(v2.RandomVerticalFlip())
        if jitter:
            ops.append(v2.ColorJitter(jitter, jitter, jitter))
        if shift:  # other stains and microscopes: dark objects on light ground, other hues (grey images skip hue)
            ops += [v2.RandomInvert(0.5), v2.RandomApply([ShiftJitter()], p=0.8)]
        self.ops = v2.Compose(ops) if ops else None

    def window(self, size: tuple[int, int], factor: float, rng: np.random.Generator) -> Window:
        """A window of the source image that becomes the crop at zoom ``factor * s``, s random."""
        s = factor * float(np.exp(rng.uniform(*np.log(self.scale))))
        h, w = (max(1, int(round(c / s))) for c in self.crop)
        top = int(rng.integers(min(0, size[0] - h), max(0, size[0] - h) + 1))
        left = int(rng.integers(min(0, size[1] - w), max(0, size[1] - w) + 1))
        return top, left, h, w


class InstanceDataset(Dataset):
    """``items`` -> (image (C, H, W) uint8, target dict); with ``transform`` a random window at
    the crop size, else the whole image (shrunk so its longer side is at most ``max_size``)."""

    def __init__(self, items: list[InstanceItem], channels: int, transform: InstanceTransform | None = None,
                 max_size: int = 0, drop_crowd: bool = False, masks: bool = False, high: float = 0.0):
        self.items, self.channels, self.transform, self.max_size = items, channels, transform, max_size
        self.high = high  # the data set's high value for 16-bit images (see images.pil_to_array)
        self.drop_crowd = drop_crowd  # training: torchvision's heads have no notion of crowd regions
        # every target carries masks, (0, H, W) for an image without objects: Mask R-CNN refuses a
        # batch where one target lacks them, and such images are legal
        self.masks = masks
        self.epoch_seed = 0

    def __len__(self) -> int:
        return len(self.items)

    def factor(self, size: tuple[int, int]) -> float:
        return min(1.0, self.max_size / max(size)) if self.max_size else 1.0

    def __getitem__(self, i: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        item = self.items[i]
        image = (item.image if isinstance(item.image, np.ndarray)
                 else read_image(item.image, self.channels, high=self.high))
        size = image.shape[:2]
        f = self.factor(size)
        if self.transform is not None:
            rng = np.random.default_rng([int(torch.randint(0, 2**31, ()).item()), i])
            win = self.transform.window(size, f, rng)
            out_hw = self.transform.crop
        else:
            win = (0, 0, *size)
            out_hw = (max(1, round(size[0] * f)), max(1, round(size[1] * f)))
        # the instance task: every object has a mask, a box alone (a YOLO box line among polygons) its box
        objects = item.objects.window(win, masks=self.masks)
        img = tv_tensors.Image(torch.from_numpy(slice_padded(image, win)).permute(2, 0, 1))
        sample = {"image": img, "boxes": tv_tensors.BoundingBoxes(torch.from_numpy(objects["boxes"]), format="XYXY",
                                                                    canvas_size=win[2:])}
        if "masks" in objects:
            sample["masks"] = tv_tensors.Mask(torch.from_numpy(objects["masks"]))
        elif self.masks:
            sample["masks"] = tv_tensors.Mask(torch.zeros((0, *win[2:]), dtype=torch.uint8))
        if out_hw != tuple(win[2:]):
            sample = resize_sample(sample, out_hw)
        if self.transform is not None and self.transform.ops is not None:
            sample = self.transform.ops(sample)
        return sample["image"].as_subclass(torch.Tensor), self._target(sample, objects, i)

    def _target(self, sample: dict, objects: dict, index: int) -> dict[str, torch.Tensor]:
        labels, crowd = torch.from_numpy(objects["labels"]) + 1, torch.from_numpy(objects["crowd"])
        if "masks" in sample:
            masks = sample["masks"].as_subclass(torch.Tensor)
            boxes = torch.from_numpy(masks_to_boxes_np(masks.numpy()))  # exact after any crop or flip
            keep = masks.flatten(1).sum(1) >= MIN_PIXELS
        else:
            masks, boxes = None, sample["boxes"].as_subclass(torch.Tensor).float()
            keep = ((boxes[:, 2] - boxes[:, 0]) >= 1) & ((boxes[:, 3] - boxes[:, 1]) >= 1)
        if self.drop_crowd:
            keep &= ~crowd
        target = {"boxes": boxes[keep].reshape(-1, 4), "labels": labels[keep].long(), "iscrowd": crowd[keep].long(),
                  "image_id": torch.tensor(index)}
        if masks is not None:
            target["masks"] = masks[keep]
        return target


def resize_sample(sample: dict, size: tuple[int, int]) -> dict:
    """Image (antialiased bilinear), boxes (scaled) and masks (nearest-exact, centred as the image is:
    the boxes recomputed from them stay on their objects) resized to ``size``."""
    out = v2.Resize(list(size), antialias=True)({k: v for k, v in sample.items() if k != "masks"})
    if "masks" in sample:
        out["masks"] = tv_tensors.Mask(resize_mask(sample["masks"].as_subclass(torch.Tensor), size))
    return out


def list_collate(batch: list) -> tuple[list[torch.Tensor], list[dict]]:
    """Images of any sizes stay a list; the detection models batch them themselves."""
    return [b[0] for b in batch], [b[1] for b in batch]

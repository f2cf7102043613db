"""Segmentation data: the layouts of ``segment_layouts`` (image and mask folders paired by file stem,
SegNet's CamVid, Cityscapes, Pascal VOC) and the synthetic shapes (``shapes`` or ``shapes:N``:
background + 4 shape classes). Every mask is checked before training; small data sets are decoded
into memory. A classes file (``--classes-file``, or ``classes.csv`` / ``classes.txt`` /
``class_dict.csv`` in ROOT) gives names and colours. Splits follow ``cnnkit.data.splits``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from cnnkit.data.images import (
    UNREADABLE,
    bomb_message,
    open_image,
    pil_to_array,
    probe_channels,
    probe_high,
    scaled_size,
    upright_size,
)
from cnnkit.data.layout import Found, Layout, read_with
from cnnkit.data.masks import (
    IGNORE,
    VOC_CLASSES,
    ClassSpec,
    MaskInfo,
    binary_spec,
    check_foreground,
    check_masks,
    class_pixel_stats,
    decode_mask,
    default_colours,
    infer_classes,
    mask_info,
    odd_binary_masks,
    read_classes_file,
    report_problems,
    scan_mask,
)
from cnnkit.data.request import DataRequest
from cnnkit.data.segment_layouts import (  # noqa: F401 - re-exported for the instance readers
    IMAGE_DIRS,
    MASK_DIRS,
    find_segment_layout,
    pair_by_stem,
)
from cnnkit.data.splits import Splits, resolve_splits
from cnnkit.data.synthetic import SHAPE_NAMES, is_shapes, make_scene, shapes_count
from cnnkit.errors import CnnkitError
from cnnkit.log import LOGGER
from cnnkit.meta import ModelMeta

CACHE_LIMIT_BYTES = 4 * 1024**3
DEFAULT_VAL_SPLIT = 0.2  # held out of train when there is no val split and no --val-split


@dataclass
class RawSplit:
    """One split before decoding: file pairs, or arrays (synthetic data)."""

    images: list  # paths, or (H, W, C) uint8 arrays
    masks: list  # paths, or (H, W) uint8 class-id arrays
    infos: list[MaskInfo] | None = None
    paths: list[Path] | None = None  # the image files, kept when the images are decoded into memory


def synthetic_splits(source: str, seed: int, size: int = 64) -> tuple[dict[str, RawSplit], ClassSpec]:
    """'shapes[:N]': N training and N/4 validation scenes of ``size`` px with semantic masks."""
    n_train = shapes_count(source, default=1000, least=4)
    splits = {}
    for split, count, split_seed in (("train", n_train, seed), ("val", max(n_train // 4, 4), seed + 10_000)):
        scenes = [make_scene(i, split_seed, size) for i in range(count)]
        splits[split] = RawSplit([s.image for s in scenes], [s.semantic for s in scenes])
    names = ["background", *SHAPE_NAMES]
    return splits, ClassSpec(names, list(range(len(names))), default_colours(len(names)), source="shapes")


def class_spec(meta: ModelMeta | None, classes_file: str, root: Path, layout: str, infos: list[MaskInfo],
               ignore_value: int, binary: bool) -> ClassSpec:
    """The classes: from a checkpoint's meta, a classes file, the VOC defaults, or the masks' values."""
    if meta and "values" in meta.extra:
        return ClassSpec(list(meta.classes), meta.value("values", [0]), [(r, g, b) for r, g, b in meta.colours],
                         meta.value("ignore_index", 255), binary=meta.value("binary", False),
                         void_values=tuple(meta.value("void_values", [])), source="checkpoint")
    if binary:
        check_foreground(infos, str(root))
        return binary_spec(ignore_value)
    candidates = ([Path(classes_file)] if classes_file
                  else [root / "classes.csv", root / "classes.txt", root / "class_dict.csv"])
    for path in candidates:
        if path.is_file() or classes_file:
            return read_classes_file(path, ignore_value)
    if layout == "voc":
        return ClassSpec(list(VOC_CLASSES), list(range(21)), default_colours(21), ignore_value, source="VOC")
    return infer_classes(infos, ignore_value, binary, str(root))


def image_size(path: Path) -> tuple[int, int]:
    try:
        with Image.open(path) as im:
            return upright_size(im)
    except Image.DecompressionBombError as e:
        raise CnnkitError(bomb_message(path, e) + ", or pass --skip-bad") from None
    except UNREADABLE as e:
        raise CnnkitError(f"{path}: unreadable image ({e}); re-export or remove it, or pass --skip-bad") from None


def read_pairs(images: list[Path], masks: list[Path], decode: bool = False
               ) -> tuple[list[MaskInfo | None], list[tuple[int, int] | None], dict[Path, str]]:
    """Each mask scanned and each image's upright (W, H) read: from its header, or (``decode``) by the
    full decode training does, which alone finds a truncated body. None, and a message by file, for
    what cannot be read: every such file is named, not the first alone."""
    from concurrent.futures import ThreadPoolExecutor

    def one(pair: tuple[Path, Path]) -> tuple[MaskInfo | None, tuple[int, int] | None, dict[Path, str]]:
        image, mask = pair
        info, size, bad = None, None, {}
        try:
            size = _decoded_size(image) if decode else image_size(image)
        except CnnkitError as e:
            bad[image] = str(e)
        try:
            info = scan_mask(mask)
        except CnnkitError as e:
            bad[mask] = str(e)
        return info, size, bad

    with ThreadPoolExecutor(2) as pool:
        found = list(pool.map(one, zip(images, masks)))
    return [f[0] for f in found], [f[1] for f in found], {p: m for f in found for p, m in f[2].items()}


def _decoded_size(path: Path) -> tuple[int, int]:
    with open_image(path) as im:
        return im.size


def load_pair(image: Path, mask: Path, spec: ClassSpec, channels: int, max_size: int, scale_masks: bool = True,
              high: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Decode one pair, scaled by ``max_size``: ``(H, W, C)`` uint8 image and ``(H, W)`` uint8 class ids
    (the mask left at full size without ``scale_masks``); ``high``: see ``images.pil_to_array``."""
    pil = open_image(image)
    ids = decode_mask(mask, spec)
    return scale_pair(pil_to_array(pil, channels, high), ids, max_size, scale_masks)


def scale_pair(image: np.ndarray, mask: np.ndarray, max_size: int, scale_masks: bool = True
               ) -> tuple[np.ndarray, np.ndarray]:
    h, w = mask.shape
    size = scaled_size(w, h, max_size)
    if size == (w, h):
        return image, mask
    pil = Image.fromarray(image.squeeze(-1) if image.shape[-1] == 1 else image).resize(size, Image.BILINEAR)
    arr = np.array(pil)  # writable, as torch.from_numpy wants
    if scale_masks:
        mask = np.array(Image.fromarray(mask).resize(size, Image.NEAREST))
    return (arr[..., None] if arr.ndim == 2 else arr), mask


class SegmentDataset(Dataset):
    """Yields ``(image (C, H, W) uint8, mask (H, W) uint8 class ids, IGNORE = 255)``; decodes from disk
    when not cached. ``transform(image, mask)`` is applied jointly (see transforms.SegmentTransform)."""

    def __init__(self, images: list, masks: list, spec: ClassSpec, channels: int, max_size: int, transform=None,
                 scale_masks: bool = True, high: float = 0.0):
        self.images, self.masks, self.spec, self.high = images, masks, spec, high
        self.channels, self.max_size, self.transform = channels, max_size, transform
        self.scale_masks = scale_masks  # False: full-size masks, yielded as {"mask", "size"} for full_res_collate

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor | dict]:
        image, mask = self.images[i], self.masks[i]
        if isinstance(image, Path):
            image, mask = load_pair(image, mask, self.spec, self.channels, self.max_size, self.scale_masks, self.high)
        image = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)
        mask = torch.from_numpy(np.ascontiguousarray(mask))
        if self.transform is not None:
            image, mask = self.transform(image, mask)
        if not self.scale_masks:
            return image, {"mask": mask, "size": torch.tensor(image.shape[-2:]), "full_size": torch.tensor(mask.shape)}
        return image, mask


def pad_collate(batch: list[tuple[torch.Tensor, torch.Tensor]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack pairs of different sizes: images padded with 0, masks with IGNORE (bottom and right)."""
    h, w = (max(img.shape[d] for img, _ in batch) for d in (-2, -1))
    mask_h, mask_w = (max(mask.shape[d] for _, mask in batch) for d in (-2, -1))  # full-size masks may be larger
    images = torch.zeros(len(batch), batch[0][0].shape[0], h, w, dtype=torch.uint8)
    masks = torch.full((len(batch), mask_h, mask_w), IGNORE, dtype=torch.int64)
    for i, (img, mask) in enumerate(batch):
        images[i, :, : img.shape[-2], : img.shape[-1]] = img
        masks[i, : mask.shape[-2], : mask.shape[-1]] = mask
    return images, masks


def full_res_collate(batch: list[tuple[torch.Tensor, dict]]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Like pad_collate, for shrunk images with full-size masks: targets are {"mask": (N, H, W) padded with
    IGNORE, "size" and "full_size": (N, 2), each image's (h, w) and its mask's (H, W) before padding}."""
    images, masks = pad_collate([(image, target["mask"]) for image, target in batch])
    return images, {"mask": masks, "size": torch.stack([target["size"] for _, target in batch]),
                    "full_size": torch.stack([target["full_size"] for _, target in batch])}


def decode_split(images: list[Path], masks: list[Path], spec: ClassSpec, channels: int, max_size: int,
                 cache: str, scale_masks: bool = True, high: float = 0.0) -> tuple[list, list]:
    """Decode into memory when ``cache`` allows (auto: under 4 GiB), else keep the paths."""
    from concurrent.futures import ThreadPoolExecutor

    sizes = [scaled_size(*image_size(p), max_size) for p in images[:16]]
    estimate = len(images) * np.mean([w * h for w, h in sizes or [(0, 0)]]) * (channels + 1)
    if cache == "none" or (cache == "auto" and estimate > CACHE_LIMIT_BYTES):
        return list(images), list(masks)
    with ThreadPoolExecutor(2) as pool:
        pairs = list(pool.map(lambda pair: load_pair(pair[0], pair[1], spec, channels, max_size, scale_masks, high),
                              zip(images, masks)))
    return [p[0] for p in pairs], [p[1] for p in pairs]


def detect_channels(splits: dict[str, RawSplit]) -> int:
    first = next(iter(splits.values())).images
    if first and isinstance(first[0], np.ndarray):
        return first[0].shape[-1]
    return probe_channels(first)


def log_layout(root: Path, layout: str, splits: dict[str, RawSplit], spec: ClassSpec, scoring: bool = False) -> None:
    counts = ", ".join(f"{len(s.images)} {'to score' if scoring else k}" for k, s in splits.items())
    LOGGER.info("segment data %s (%s layout): %s pairs; %d classes (%s), ignore index %d", root, layout, counts,
                len(spec.names), ", ".join(spec.names[:12]) + ("..." if len(spec.names) > 12 else ""),
                spec.ignore_value)


@dataclass(kw_only=True)
class SegmentData(Splits[RawSplit]):
    """The splits, their classes, and what the data says of its images."""

    spec: ClassSpec
    channels: int
    class_stats: tuple[np.ndarray, np.ndarray] | None  # training split: (pixels, pixels of images with) per class
    high: float = 0.0  # the data set's high value for 16-bit images, 0 for 8-bit (images.probe_high)
    found: Found | None = None  # the layout read (None for the synthetic shapes): its found line, for `data check`


def read_shapes(source: str, *, seed: int = 0, **_: Any) -> Found:
    """The synthetic shapes as named splits of (image, mask) arrays."""
    splits, spec = synthetic_splits(source, seed)
    return Found("synthetic", Path(source), "the synthetic shapes",
                 {k: list(zip(s.images, s.masks)) for k, s in splits.items()}, classes=spec.names, form="")


def load_segment_data(request: DataRequest, classes_file: str = "", ignore_index: int = 255, binary: bool = False,
                      meta: ModelMeta | None = None, layouts: Sequence[Layout] = ()) -> SegmentData:
    """Find, pair, check and (if small) decode a segmentation data set; see the module docstring.

    ``meta`` (a model's card) fixes the classes when evaluating, as the request's ``channels`` and
    ``high`` fix those; when the request scores one split (``request.split``; see ``cnnkit.data.splits``)
    only that split is loaded, as ``val``, its masks at full size. ``request.decode``: check every image
    by a full decode even when not caching (`cnnkit data check`: what training would meet mid-epoch).
    ``layouts``: the task's (``cnnkit.data.layout``): the first that detects the source reads it.
    """
    read = None
    if is_shapes(request.source):
        splits, spec = synthetic_splits(request.source, request.seed)
        if binary:
            raise CnnkitError("--binary: the shapes data set has 5 classes; drop --binary")
        if classes_file and request.training:
            raise CnnkitError(f"--classes-file {classes_file}: the shapes data set names its own classes; drop "
                              "--classes-file")
        parts = Splits(train=splits["train"], val=splits["val"]) if request.training else Splits(val=splits["val"])
        for s in parts.parts().values():
            s.infos = [mask_info(m) for m in s.masks]
        root, layout = Path(request.source), "synthetic"
    else:
        parts, read, spec = _file_splits(request, meta, classes_file, ignore_index, binary, layouts)
        root, layout = read.root, read.name
    found = parts.parts()
    channels = request.channels or detect_channels(found)
    high = probe_high(parts.val.images if parts.train is None else parts.train.images) if request.high is None \
        else request.high
    log_layout(root, layout, found, spec, scoring=not request.training)
    # both branches above set every split's infos
    stats = class_pixel_stats(cast("list[MaskInfo]", parts.train.infos), spec) if parts.train is not None else None
    for split in found.values():
        if split.images and isinstance(split.images[0], Path):
            split.paths = list(split.images)
            split.images, split.masks = decode_split(split.images, split.masks, spec, channels, request.max_size,
                                                     request.cache, scale_masks=request.training, high=high)
        else:
            split.images, split.masks = _scaled_arrays(split.images, split.masks, channels, request.max_size,
                                                       request.training)
    return SegmentData(train=parts.train, val=parts.val, test=parts.test, plan=parts.plan, spec=spec,
                       channels=channels, class_stats=stats, high=high, found=read)


def _file_splits(request: DataRequest, meta: ModelMeta | None, classes_file: str, ignore_index: int,
                 binary: bool, layouts: Sequence[Layout] = ()) -> tuple[Splits[RawSplit], Found, ClassSpec]:
    """Find the layout, assign its splits, check every mask; the splits, the layout read and the classes."""
    found = read_with(layouts, request.source, "cnnkit.data.segment_layouts:read_segment", skip_bad=request.skip_bad)
    root = found.root
    LOGGER.info("%s", found.line())
    parts = resolve_splits(found.splits, request, origin=Path(request.source),
                           fraction=request.fraction(DEFAULT_VAL_SPLIT), names=found.labels, key=lambda pair: pair[0])
    files = {k: ([p[0] for p in pairs], [p[1] for p in pairs]) for k, pairs in parts.parts().items()}
    for split, (images, _) in files.items():
        if not images:
            raise CnnkitError(f"{root}: the {split} split has no image/mask pairs; add files")
    infos: dict[str, list[MaskInfo]] = {}
    sizes: dict[str, list[tuple[int, int]]] = {}
    problems: dict[str, dict[Path, str]] = {}
    for k, (images, masks) in list(files.items()):  # unreadable pairs leave the class count and checks
        read, read_sizes, problems[k] = read_pairs(images, masks, request.decode)
        keep = [i for i, (image, mask) in enumerate(zip(images, masks)) if not {image, mask} & problems[k].keys()]
        if not keep:
            report_problems(list(problems[k].values()), "image/mask", request.skip_bad)
            raise CnnkitError(f"{root}: no readable image/mask pair in the {k} split; fix or replace the files")
        files[k] = ([images[i] for i in keep], [masks[i] for i in keep])
        infos[k] = [cast(MaskInfo, read[i]) for i in keep]  # each kept pair was read: set
        sizes[k] = [cast("tuple[int, int]", read_sizes[i]) for i in keep]
    every = [i for v in infos.values() for i in v]
    spec = (class_spec(meta, classes_file, root, found.name, every, ignore_index, binary)
            if (meta and "values" in meta.extra) or found.extra["spec"] is None or binary else found.extra["spec"])
    for k, (_, masks) in files.items():
        problems[k].update(check_masks(infos[k], masks, sizes[k], spec))
    report_problems([m for by_file in problems.values() for m in by_file.values()], "image/mask", request.skip_bad)
    odd_binary_masks(every, spec)
    if meta:  # a model's classes: most pixels of its own data belong to them
        _warn_foreign(root, every, spec)
    kept = {k: _kept(images, masks, infos[k], problems[k]) for k, (images, masks) in files.items()}
    return parts.map(lambda k, _: kept[k]), found, spec


def _warn_foreign(root: Path, infos: list[MaskInfo], spec: ClassSpec) -> None:
    """A model's data should be mostly its classes; 0/255 masks scored by a model whose ignore index is 255
    would score background alone (mIoU 1.0 for any model): refused, as training refuses them."""
    index = [i for i in infos if i.kind == "index"]
    ignore = spec.ignore_value
    if (index and not spec.binary and ignore not in spec.values and all(set(i.counts) <= {0, ignore} for i in index)
            and any(ignore in i.counts for i in index)):
        raise CnnkitError(f"{root}: the masks hold only the values 0 and {ignore}, and {ignore} is this model's "
                          "ignore index: only background would be scored; save the masks as 0/1 class values "
                          "(or score a model trained with --binary)")
    pixels, total = class_pixel_stats(infos, spec)[0].sum(), sum(sum(i.counts.values()) for i in infos)
    if total and pixels < total / 2:
        LOGGER.warning("warning: %s: only %.0f%% of the mask pixels are the model's classes (%s), the rest "
                       "ignored; is this the data set it was trained for?", root, 100 * pixels / total,
                       ", ".join(spec.names[:6]))


def _kept(images: list[Path], masks: list[Path], infos: list[MaskInfo], problems: dict[Path, str]) -> RawSplit:
    """The pairs whose masks had no problem (the others were reported, and skipped with --skip-bad)."""
    keep = [i for i, m in enumerate(masks) if m not in problems]
    return RawSplit([images[i] for i in keep], [masks[i] for i in keep], [infos[i] for i in keep])


def _scaled_arrays(images: list[np.ndarray], masks: list[np.ndarray], channels: int, max_size: int,
                   scale_masks: bool = True) -> tuple[list, list]:
    out_images, out_masks = [], []
    for image, mask in zip(images, masks):
        if image.shape[-1] != channels:
            image = pil_to_array(Image.fromarray(image.squeeze(-1) if image.shape[-1] == 1 else image), channels)
        image, mask = scale_pair(image, mask, max_size, scale_masks)
        out_images.append(image)
        out_masks.append(mask)
    return out_images, out_masks

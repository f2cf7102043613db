"""Segmentation from seeds or without labels, as the API and ``cnnkit segment`` use it: images and seeds
in, :class:`cnnkit.Result` objects out, and a data set that ``cnnkit train segment`` reads."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from cnnkit.data.images import as_pil, iter_sources, open_readable, pil_to_array
from cnnkit.errors import CnnkitError
from cnnkit.files import atomic_write_bytes, atomic_write_csv
from cnnkit.grow.seeds import SeedSet, parse_classes, read_seeds
from cnnkit.grow.view import GrowView, confidence_image
from cnnkit.log import LOGGER
from cnnkit.meta import ModelMeta, default_colours
from cnnkit.results import Result
from cnnkit.tasks.common import save_png

IGNORE = 255  # mask value of pixels below --min-confidence: what `cnnkit train segment` ignores by default

ImageLike = Any  # a path, a PIL image or an (H, W[, C]) uint8 array


def segment_image(image: ImageLike, seeds: np.ndarray | str | Path | None = None,
                  classes: Sequence[str] | str | None = None, **options: Any) -> Result:
    """Segment one image from itself, or from ``seeds``.

    image: a path, a PIL image or an ``(H, W[, 3])`` uint8 array. seeds: an ``(H, W)`` int array (0 = unknown,
    k = class k), or a seed file (PNG of class numbers, JSON/CSV of points with class names). classes: the
    class names (``"sky,road"``, a list, or a classes file). options: fields of
    :class:`cnnkit.grow.method.GrowOptions` (``max_segments``, ``side``, ``iterations``...).
    Returns a :class:`cnnkit.Result` with ``.mask`` ``(H, W)`` (class index, or segment id without seeds),
    ``.confidence`` ``(H, W)`` float32 in [0, 1], ``r["segments"]`` and ``.plot()``. CnnkitError on bad seeds.
    """
    return segment_images([image], None if seeds is None else [seeds] if isinstance(seeds, np.ndarray) else seeds,
                          classes, **options)[0]


def segment_images(sources: ImageLike | Sequence[ImageLike], seeds: Any = None,
                   classes: Sequence[str] | str | None = None, skip_bad: bool = False, **options: Any) -> list[Result]:
    """Segment images together, so that a segment id means the same thing in each (see :func:`segment_image`).

    sources: files, folders, globs, PIL images or arrays. seeds: a seed file or folder of per-image seed files
    (matched by the image's name), or one ``(H, W)`` array (or None) per image.
    """
    from cnnkit.grow.method import GrowOptions, grow_images

    grow = replace(GrowOptions(), **options)
    paths, images = open_sources(sources, skip_bad)
    arrays = [pil_to_array(im, 3) for im in images]  # 16-bit and float images by their type's range
    seed_set = collect_seeds(seeds, paths, images, classes)
    maps = None if seed_set is None else seed_set.maps
    n_classes = 0 if seed_set is None else len(seed_set.classes)
    if seed_set is not None:
        counts = seed_set.counts().sum(axis=0)
        missing = [name for name, n in zip(seed_set.classes, counts) if n == 0]
        if missing:
            LOGGER.warning(f"warning: no seeds for {', '.join(missing)}: no pixel is labelled with "
                           f"{'it' if len(missing) == 1 else 'them'}; seed each class in at least one image")
    grown = grow_images(arrays, maps, n_classes, grow)
    count = max(int(labels.max()) + 1 for labels, _ in grown)
    names = list(seed_set.classes) if seed_set is not None else [f"segment{i + 1}" for i in range(count)]
    meta = ModelMeta.card(task="segment", model="grow", classes=names, in_chans=3, mean=[0.0] * 3, std=[1.0] * 3,
                          colours=file_colours(classes, names) or default_colours(len(names)), extra={"grown": True})
    view = GrowView()
    results = []
    for i, (labels, confidence) in enumerate(grown):
        seed = maps[i] if maps is not None else None
        results.append(Result(prediction(labels, confidence, names, seed), Image.fromarray(arrays[i]), view, meta,
                              str(paths[i]) if paths[i] is not None else None))
    return results


def file_colours(classes: Any, names: list[str]) -> list[list[int]] | None:
    """The colours of a classes.csv given as ``classes`` (``index,name,r,g,b``), in ``names``' order; None
    where ``classes`` is no such file or does not colour every class."""
    if not (isinstance(classes, (str, Path)) and str(classes).lower().endswith(".csv") and Path(classes).is_file()):
        return None
    from cnnkit.data.masks import read_classes_file

    spec = read_classes_file(Path(classes), ignore_value=-1)  # -1: no row is the ignored one
    colours = {name: list(colour) for name, colour in zip(spec.names, spec.colours)}
    return [colours[n] for n in names] if all(n in colours for n in names) else None


def prediction(labels: np.ndarray, confidence: np.ndarray, names: list[str], seed: np.ndarray | None) -> dict:
    """The prediction dict of one image, as segmentation's view reads it (plus confidence and seeds)."""
    from cnnkit.tasks.segment.view import class_areas

    mask = labels.astype(np.uint8 if len(names) < IGNORE else np.int64)
    return {"mask": mask, "confidence": confidence, "size": [int(mask.shape[1]), int(mask.shape[0])],
            "areas": class_areas(mask, names), "segments": int(len(np.unique(mask))),
            "seeded_pixels": 0 if seed is None else int((seed > 0).sum())}


def open_sources(sources: Any, skip_bad: bool) -> tuple[list[Path | None], list[Image.Image]]:
    """Paths (None for in-memory images) and PIL images of whatever was given."""
    items = sources if isinstance(sources, (list, tuple)) else [sources]
    paths: list[Path | None] = []
    images: list[Image.Image] = []
    for item in items:
        if isinstance(item, (str, Path)):
            found, opened = open_readable(iter_sources([str(item)]), skip_bad)
            paths += found
            images += opened
        else:
            paths.append(None)
            images.append(as_pil(item))
    if not images:
        raise CnnkitError(f"{' '.join(str(s) for s in items)}: no readable images; pass image files, folders or globs")
    return paths, images


def collect_seeds(seeds: Any, paths: list[Path | None], images: list[Image.Image],
                  classes: Sequence[str] | str | None) -> SeedSet | None:
    """The seeds of every image, checked: from files (matched to the images by name) or arrays."""
    names = parse_classes(classes) if isinstance(classes, str) else tuple(classes) if classes else None
    if seeds is None:
        return None
    sizes = [im.size for im in images]
    if isinstance(seeds, (str, Path)):
        if len(images) > 1 and any(p is None for p in paths):
            raise CnnkitError(f"{seeds}: seed files are matched to image files by name; pass one seed array or "
                              "file per in-memory image")
        return read_seeds(seeds, [p or Path("image") for p in paths], sizes, names)
    if len(seeds) != len(images):
        raise CnnkitError(f"{len(seeds)} seed maps for {len(images)} images; give one (an array, a seed file or "
                          "None) per image")
    if names is None and any(isinstance(s, (str, Path)) for s in seeds):
        raise CnnkitError("seed files one per image: pass classes=[...] too, so that every file numbers the classes "
                          "alike")
    maps = [None if s is None else one_file(s, p, size, names) if isinstance(s, (str, Path))  # type: ignore[arg-type]
            else check_seed_array(np.asarray(s), size, i) for i, (s, p, size) in enumerate(zip(seeds, paths, sizes))]
    top = max((int(m.max()) for m in maps if m is not None), default=0)
    if top == 0:
        raise CnnkitError("the seed maps mark no pixel: mark a few pixels of each class with 1..C (0 = unknown)")
    if names is not None and top > len(names):
        raise CnnkitError(f"seed value {top} but only {len(names)} classes ({', '.join(names)}); values are 1..C")
    return SeedSet(maps=maps, classes=names or tuple(f"class{k}" for k in range(1, top + 1)))


def one_file(source: str | Path, path: Path | None, size: tuple[int, int], names: tuple[str, ...]) -> np.ndarray:
    """One image's seed file as a map (zeros where it marks nothing)."""
    found = read_seeds(source, [path or Path("image")], [size], names).maps[0]
    return found if found is not None else np.zeros((size[1], size[0]), np.int32)


def check_seed_array(seeds: np.ndarray, size: tuple[int, int], index: int) -> np.ndarray:
    """An ``(H, W)`` map of the image's size with values 0..C, as int32."""
    width, height = size
    if seeds.shape != (height, width):
        raise CnnkitError(f"seed map {index} is {seeds.shape}, its image is (H, W) = ({height}, {width}); give a map "
                          "of the image's size")
    if not np.issubdtype(seeds.dtype, np.integer) or seeds.min(initial=0) < 0:
        raise CnnkitError(f"seed map {index}: give integers 0 (unknown) and 1..C (class), not {seeds.dtype} "
                          f"with minimum {seeds.min()}")
    return seeds.astype(np.int32)


def write_dataset(results: list[Result], out: Path, min_confidence: float) -> Path:
    """``out/images``, ``out/masks`` (class index per pixel; 255 where the confidence is below ``min_confidence``),
    ``out/confidence`` (8-bit), ``out/overlays``, ``classes.csv`` and ``segments.csv``: a data set that
    ``cnnkit train segment --data out`` reads, ignoring the uncertain pixels."""
    stems = [unique_stem(r, i) for i, r in enumerate(results)]
    if len(set(stems)) != len(stems):
        stems = [f"{i:05d}_{s}" for i, s in enumerate(stems)]  # equal names from different folders
    rows = []
    for r, stem in zip(results, stems):
        image_path = out / "images" / (stem + (Path(r.path).suffix.lower() if r.path else ".png"))
        image_path.parent.mkdir(parents=True, exist_ok=True)
        if r.path:
            atomic_write_bytes(image_path, Path(r.path).read_bytes())
        else:
            save_png(r.image.convert("RGB"), image_path)
        mask = np.where(r["confidence"] >= min_confidence, r["mask"], IGNORE).astype(np.uint8)
        save_png(Image.fromarray(mask, "L"), out / "masks" / f"{stem}.png")
        save_png(confidence_image(r["confidence"]), out / "confidence" / f"{stem}.png")
        save_png(r.plot(), out / "overlays" / f"{stem}.png")
        rows.append({"image": image_path.name, "source": r.path or "", "segments": r["segments"],
                     "seeded_pixels": r["seeded_pixels"], "mean_confidence": f"{r['confidence'].mean():.4f}",
                     "ignored": f"{(mask == IGNORE).mean():.4f}"})
    atomic_write_csv(out / "segments.csv", rows)
    meta = results[0].meta
    lines = ["index,name,r,g,b"] + [f"{i},{n},{c[0]},{c[1]},{c[2]}" for i, (n, c) in
                                    enumerate(zip(meta.classes, meta.colours))]
    atomic_write_bytes(out / "classes.csv", ("\n".join(lines) + "\n").encode())
    return out


def unique_stem(result: Result, index: int) -> str:
    return Path(result.path).stem if result.path else f"image{index:05d}"

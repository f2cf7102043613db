"""The built-in "shapes" data set: deterministic scenes for every task's tests and demo.

Each scene is a textured background with one large shape and up to ``max_distractors`` smaller
ones. From one scene come: a class label (the large shape's kind), a semantic mask (0 background,
k+1 for kind k) and instance masks (the visible part of each shape) with their classes.
Scene ``i`` of seed ``s`` depends on ``(s, i)`` alone, so any subset regenerates identically.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from cnnkit.errors import CnnkitError

SHAPE_NAMES = ("circle", "square", "triangle", "star")


@dataclass(frozen=True)
class Scene:
    image: np.ndarray  # (H, W, 3) uint8
    label: int  # kind of the large shape, index into SHAPE_NAMES
    semantic: np.ndarray  # (H, W) uint8: 0 background, 1 + kind
    instances: np.ndarray  # (N, H, W) bool, visible part of each shape, N >= 1
    instance_classes: np.ndarray  # (N,) int64 kinds


def _polygon(kind: str, cx: float, cy: float, r: float, angle: float) -> list[tuple[float, float]]:
    if kind == "square":
        pts = [(math.cos(angle + k * math.pi / 2 + math.pi / 4), math.sin(angle + k * math.pi / 2 + math.pi / 4))
               for k in range(4)]
    elif kind == "triangle":
        pts = [(math.cos(angle + k * 2 * math.pi / 3), math.sin(angle + k * 2 * math.pi / 3)) for k in range(3)]
    else:  # star: 5 points, inner radius 0.45
        pts = [((1.0 if k % 2 == 0 else 0.45) * math.cos(angle + k * math.pi / 5),
                (1.0 if k % 2 == 0 else 0.45) * math.sin(angle + k * math.pi / 5)) for k in range(10)]
    return [(cx + r * x, cy + r * y) for x, y in pts]


def _shape_mask(kind: str, size: int, cx: float, cy: float, r: float, angle: float) -> np.ndarray:
    canvas = Image.new("L", (size, size), 0)
    draw = ImageDraw.Draw(canvas)
    if kind == "circle":
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=255)
    else:
        draw.polygon(_polygon(kind, cx, cy, r, angle), fill=255)
    return np.asarray(canvas) > 127


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    """Smooth colour noise plus faint stripes, so the models must look at shape, not just colour."""
    coarse = rng.uniform(40, 160, size=(4, 4, 3)).astype(np.uint8)
    base = np.asarray(Image.fromarray(coarse).resize((size, size), Image.BICUBIC), dtype=np.float32)
    yy, xx = np.mgrid[0:size, 0:size]
    theta, freq = rng.uniform(0, math.pi), rng.uniform(0.2, 0.6)
    stripes = 12 * np.sin(freq * (xx * math.cos(theta) + yy * math.sin(theta)))[..., None]
    noise = rng.normal(0, 6, size=(size, size, 3))
    return base + stripes + noise


def make_scene(index: int, seed: int = 0, size: int = 64, max_distractors: int = 2) -> Scene:
    """Draw scene ``index`` of the data set with ``seed``; ``size`` is the side in pixels."""
    rng = np.random.default_rng([seed, index])
    image = _background(rng, size)
    label = int(rng.integers(len(SHAPE_NAMES)))
    kinds = [label] + [int(k) for k in rng.integers(len(SHAPE_NAMES), size=rng.integers(max_distractors + 1))]
    radii = [rng.uniform(0.22, 0.32) * size] + [rng.uniform(0.08, 0.13) * size for _ in kinds[1:]]
    masks: list[np.ndarray] = []
    for kind, r in zip(kinds, radii):
        cx, cy = rng.uniform(r, size - r, size=2)
        mask = _shape_mask(SHAPE_NAMES[kind], size, cx, cy, r, rng.uniform(0, 2 * math.pi))
        colour = rng.uniform(0, 255, size=3)
        shade = 1 + 0.15 * rng.normal(size=(size, size, 1))
        image = np.where(mask[..., None], colour * shade, image)
        masks = [m & ~mask for m in masks] + [mask]  # later shapes occlude earlier ones
    keep = [i for i, m in enumerate(masks) if m.sum() >= 4]
    semantic = np.zeros((size, size), np.uint8)
    for i in keep:
        semantic[masks[i]] = kinds[i] + 1
    return Scene(
        image=np.clip(image, 0, 255).astype(np.uint8),
        label=label,
        semantic=semantic,
        instances=np.stack([masks[i] for i in keep]),
        instance_classes=np.array([kinds[i] for i in keep], dtype=np.int64),
    )


def make_classification(n: int, seed: int = 0, size: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """``n`` scenes as images ``(n, size, size, 3)`` uint8 and labels ``(n,)`` int64."""
    scenes = [make_scene(i, seed, size) for i in range(n)]
    return np.stack([s.image for s in scenes]), np.array([s.label for s in scenes], dtype=np.int64)


def write_image_folder(root: str, n_per_split: dict[str, int], seed: int = 0, size: int = 64) -> None:
    """Write scenes as ``root/<split>/<class>/<i>.png``, the ImageFolder layout users have."""
    from pathlib import Path

    for s_i, (split, n) in enumerate(n_per_split.items()):
        images, labels = make_classification(n, seed + 1000 * s_i, size)
        for i, (img, lab) in enumerate(zip(images, labels)):
            folder = Path(root) / split / SHAPE_NAMES[lab]
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(img).save(folder / f"{i:05d}.png")


def is_shapes(source: str) -> bool:
    """Whether ``--data`` names the built-in shapes ('shapes' or 'shapes:N')."""
    return source.split(":")[0] == "shapes"


def shapes_count(source: str, default: int, least: int) -> int:
    """N of 'shapes:N' (training scenes; ``default`` for plain 'shapes'), or CnnkitError when N is not a
    whole number of at least ``least``. The one parser of the shapes spec, for every task."""
    _, _, n = source.partition(":")
    if n and (not n.isdigit() or int(n) < least):
        raise CnnkitError(f"--data {source}: expected 'shapes' or 'shapes:N' with N ({least} or more) the number of "
                          "training images")
    return int(n or default)


def write_identities(root: str | Path, identities: int = 24, per_identity: int = 12, side: int = 32,
                     seed: int = 0) -> Path:
    """Synthetic identities for recognition's demo and tests: ``root/id<k>/<j>.png``, grey ``side`` px images,
    each a noisy, brightness- and contrast-shifted copy of its identity's smooth random pattern (a 4x4 grid of
    random levels, upsampled). Returns ``root``."""
    rng = np.random.default_rng(seed)
    root = Path(root)
    for k in range(identities):
        small = Image.fromarray((rng.random((4, 4)) * 255).astype(np.uint8))
        base = np.asarray(small.resize((side, side), Image.BILINEAR), np.float32) / 255
        folder = root / f"id{k}"
        folder.mkdir(parents=True, exist_ok=True)
        for j in range(per_identity):
            image = base * rng.uniform(0.8, 1.2) + rng.uniform(-0.1, 0.1) + rng.normal(0, 0.04, base.shape)
            Image.fromarray((np.clip(image, 0, 1) * 255).astype(np.uint8)).save(folder / f"{j}.png")
    return root

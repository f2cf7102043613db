"""What several tasks share: training options that several declare (the engine honours ``freeze_epochs``
and ``tta`` in any task that declares them); tile geometry (segment's sliding window, instance's merged
tiles) and the one check of the options that set it; normalisation statistics; atomic PNG writing; the view
of the tasks whose prediction is an embedding (pretrain, recognize)."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from cnnkit.config import TrainConfig
from cnnkit.data.images import image_to_array, read_image
from cnnkit.errors import CnnkitError
from cnnkit.files import atomic_write_bytes
from cnnkit.meta import ModelMeta
from cnnkit.options import option

AUGMENT_PRESETS = ("none", "light", "standard", "strong")


def augment_option() -> Any:
    """--augment: the training augmentation preset (cnnkit.data.transforms)."""
    return option("light", "augmentation preset", choices=AUGMENT_PRESETS)


def freeze_epochs_option() -> Any:
    """--freeze-epochs: honoured by the engine (``fixed_encoder``) for every task that declares it."""
    return option(0, "epochs at the start in which the --pretrained encoder stays fixed and only the new decoder "
                     "and head learn (fastai's fine_tune): a random head's first gradients do not wreck the encoder; "
                     "0 = all layers from step 1", unit="epochs", low=0)


def max_size_option() -> Any:
    return option(0, "shrink images whose longer side exceeds this before training and prediction; 0 keeps full "
                     "resolution", unit="px", low=0)


def tta_option() -> Any:
    """--tta: validation during training runs the task's prediction option ``tta`` (honoured by the engine)."""
    return option(False, "average predictions over a horizontal flip at validation and prediction")


STATS_SAMPLES = 200  # training images used for the normalisation statistics

MIN_TILE = 16  # px: a smaller tile holds too little for a CNN to see, and tiles grow as its square
MAX_OVERLAP = 0.9  # fraction: each pixel then goes through the model about 1 / (1 - 0.9) ** 2 = 100 times


def check_tiling(tile: int, overlap: float, minimum: int = MIN_TILE) -> None:
    """``tile``: side in pixels, 0 for the task's default, else at least ``minimum``; ``overlap``: fraction
    of a tile in [0, MAX_OVERLAP]. Raises CnnkitError otherwise: an overlap near 1 or a tile of a few
    pixels means millions of tiles, which looks like a hang."""
    if tile < 0 or 0 < tile < minimum:
        raise CnnkitError(f"--tile {tile}: give a tile side of at least {minimum} pixels, or 0 for the default")
    if not 0 <= overlap <= MAX_OVERLAP:
        raise CnnkitError(f"--overlap must be in [0, {MAX_OVERLAP}], got {overlap}")


def tile_starts(length: int, tile: int, step: int) -> list[int]:
    """Start offsets of tiles of ``tile`` pixels every ``step`` pixels, the last flush with the end."""
    if length <= tile:
        return [0]
    starts = list(range(0, length - tile, step))
    return starts + [length - tile]


def given_stats(cfg: TrainConfig, channels: int) -> tuple[list[float], list[float]]:
    """``--mean`` / ``--std`` for ``channels``-channel images: one value each, or one for all; else an error."""
    out = []
    for key, values in (("mean", list(cfg.mean)), ("std", list(cfg.std))):
        if len(values) not in (1, channels):
            raise CnnkitError(f"--{key} {' '.join(f'{v:g}' for v in values)}: {len(values)} values for "
                              f"{channels}-channel images; give {channels} (one per channel), or one for all")
        out.append(values * channels if len(values) == 1 else values)
    return out[0], out[1]


def image_stats(images: list, channels: int, high: float = 0.0) -> tuple[list[float], list[float]]:
    """Per-channel mean and std of 0..1 pixels over up to STATS_SAMPLES training images."""
    if not images:
        raise CnnkitError("the training split is empty; add image/mask pairs")
    pick = np.random.default_rng(0).permutation(len(images))[:STATS_SAMPLES]
    total: Any = 0.0
    total_sq: Any = 0.0
    count = 0.0
    for i in pick:
        image = images[int(i)]
        if isinstance(image, Path):
            image = read_image(image, channels, high=high)
        x = image.reshape(-1, image.shape[-1]).astype(np.float64) / 255.0
        total, total_sq, count = total + x.sum(0), total_sq + (x * x).sum(0), count + len(x)
    mean = total / count
    std = np.sqrt(np.maximum(total_sq / count - mean * mean, 1e-12))
    return [round(float(m), 6) for m in mean], [round(float(s), 6) for s in std]


def save_png(picture: Image.Image, path: Path) -> None:
    """Write atomically, so that an interrupted run leaves no half-written picture."""
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    atomic_write_bytes(path, buffer.getvalue())


class EmbeddingView:
    """A prediction is ``{"embedding": [D floats]}``: the network's embedding of the image (``cnnkit embed`` writes
    them)."""

    def __init__(self, spec: Any):
        self.name = spec.name

    @staticmethod
    def record(prediction: dict) -> dict:
        return prediction

    @staticmethod
    def fields(prediction: dict) -> dict[str, Callable[[], Any]]:
        return {"embedding": lambda: np.asarray(prediction["embedding"], np.float32)}

    @staticmethod
    def table(prediction: dict) -> dict[str, list]:
        """One row: the embedding."""
        return {"embedding": [prediction["embedding"]]}

    @staticmethod
    def describe(prediction: dict) -> str:
        values = prediction["embedding"]
        return f"embedding of {len(values)} dimensions ({', '.join(f'{v:.3f}' for v in values[:3])}, ...)"

    @staticmethod
    def csv_row(prediction: dict) -> dict[str, str]:
        return {"embedding": ";".join(f"{v:.6g}" for v in prediction["embedding"])}

    @staticmethod
    def visualise(image: Image.Image, prediction: dict, meta: ModelMeta) -> Image.Image:
        return image.convert("RGB")

    def write_outputs(self, image: Image.Image, prediction: dict, meta: ModelMeta, folder: Path, stem: str,
                      pictures: bool = True) -> dict[str, str]:
        return {}

    @staticmethod
    def write_results(records: list[dict], meta: ModelMeta, folder: Path) -> None:
        return None


def exported_batch(model: Any, images: list[Image.Image]) -> np.ndarray:
    """PIL images as the ``(N, C, S, S)`` uint8 batch an exported whole-image graph takes (``model``: an
    exported model: its card and input shape)."""
    meta, side = model.meta, model.input_shape[-1]
    return np.ascontiguousarray(np.stack([image_to_array(im, meta.in_chans, side, meta.pixel_max).transpose(2, 0, 1)
                                          for im in images]))


def class_index(target: str, classes: list[str]) -> int:
    """``cnnkit explain --target``: a class name (exact, then ignoring case) or an index into ``classes``;
    CnnkitError naming the classes (with the closest) for anything else."""
    import difflib

    text = str(target).strip()
    if text in classes:
        return classes.index(text)
    folded = [c.lower() for c in classes]
    if text.lower() in folded:
        return folded.index(text.lower())
    if text.lstrip("-").isdigit() and 0 <= int(text) < len(classes):
        return int(text)
    close = difflib.get_close_matches(text, classes, n=1, cutoff=0.5)
    hint = f" (did you mean {close[0]}?)" if close else ""
    shown = ", ".join(classes[:12]) + (", ..." if len(classes) > 12 else "")
    raise CnnkitError(f"--target {text}: not a class of this model{hint}; give a class name or an index "
                      f"0..{len(classes) - 1} ({shown})")

"""Explanations of a loaded checkpoint's predictions: ``explain_images`` asks the model's task what to explain in
each image (``Task.explain_targets``), maps it (``cnnkit.explain.methods``) and brings the maps back to the
image's own size; an ``Explanation`` draws and saves them."""

from __future__ import annotations

import io
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from cnnkit.errors import CnnkitError
from cnnkit.files import atomic_write_bytes
from cnnkit.log import LOGGER

if TYPE_CHECKING:
    from cnnkit.engine.task import ExplainRequest
    from cnnkit.loading import Model

ALPHA = 0.5  # the heatmap's weight over the image in an overlay
# prediction options that change how predict runs the image (tiles, flips, probabilities out): an explanation
# runs the whole working image once, so these would be taken and silently not honoured
NOT_HONOURED = ("mode", "tile", "overlap", "tile_batch", "probs", "tta")


def refuse_unhonoured(given: Iterable[str], flags: bool = False) -> None:
    """CnnkitError naming the first of ``given`` (prediction option names) that explanations do not honour."""
    for name in given:
        if name in NOT_HONOURED:
            shown = f"--{name.replace('_', '-')}" if flags else name
            raise CnnkitError(f"{shown}: explanations run on the whole image at the model's working size, once, "
                              f"without tiles or test-time flips; drop {shown}")


@dataclass
class Explanation:
    """The maps of one image: ``maps`` ``(T, H, W)`` float32 in [0, 1] at the original image's size, one per
    target (``labels[t]``, e.g. "cat (0.93)"), made by ``method`` at ``layer`` ("" for the pixel methods);
    ``regions[t]``: bool ``(H, W)`` of where the prediction lies (segment's pixels, a detection's mask), or None;
    ``flat[t]``: map ``t`` is all zero (the method found no evidence for the target there: Grad-CAM keeps only
    positive evidence, so a class the model does not favour often has none); ``nowhere[t]``: the target has a
    region but it is empty (a class predicted nowhere), so the map explains it over the whole image."""

    image: Image.Image
    maps: np.ndarray
    labels: list[str]
    method: str
    layer: str
    regions: list = field(default_factory=list)
    flat: list[bool] = field(default_factory=list)
    nowhere: list[bool] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.flat:
            self.flat = [not bool(np.any(m > 0)) for m in self.maps]
        if not self.nowhere:
            self.nowhere = [r is not None and not np.any(r) for r in self.regions] + [False] * (
                len(self.labels) - len(self.regions))

    def overlay(self, i: int = 0, alpha: float = ALPHA) -> Image.Image:
        """Map ``i`` over the image: jet colours (blue low, red high) weighted ``alpha`` (0: the image alone,
        1: the map alone); an RGB PIL image."""
        base = _rgb(self.image)
        heat = Image.fromarray(jet(self.maps[i]))
        if heat.size != base.size:
            heat = heat.resize(base.size, Image.BILINEAR)
        return Image.blend(base, heat, alpha)

    def names(self, stem: str) -> list[tuple[str, str]]:
        """(overlay, map) file names of each target: ``<stem>_<i>_<label-slug>.png`` and ``.npy``."""
        return [(f"{stem}_{i}_{slug(label)}.png", f"{stem}_{i}_{slug(label)}.npy") for i, label in
                enumerate(self.labels)]

    def save(self, folder: str | Path, stem: str = "image") -> list[Path]:
        """Write each target's overlay PNG and raw map (``.npy``, float32 ``(H, W)``) into ``folder`` (made if
        missing; ``stem`` may hold subfolders), atomically; returns the files, overlay then map per target."""
        folder = Path(folder)
        written: list[Path] = []
        for i, (picture, raw) in enumerate(self.names(stem)):
            (folder / picture).parent.mkdir(parents=True, exist_ok=True)
            buffer = io.BytesIO()
            self.overlay(i).save(buffer, format="PNG")
            atomic_write_bytes(folder / picture, buffer.getvalue())
            buffer = io.BytesIO()
            np.save(buffer, self.maps[i].astype(np.float32), allow_pickle=False)
            atomic_write_bytes(folder / raw, buffer.getvalue())
            written += [folder / picture, folder / raw]
        return written


def jet(values: np.ndarray) -> np.ndarray:
    """``(H, W)`` values in [0, 1] -> ``(H, W, 3)`` uint8 jet colours (the piecewise-linear approximation)."""
    v = np.clip(np.asarray(values, np.float32), 0, 1)[..., None]
    rgb = np.clip(1.5 - np.abs(4 * v - np.array([3.0, 2.0, 1.0], np.float32)), 0, 1)
    return np.round(rgb * 255).astype(np.uint8)


def slug(label: str) -> str:
    """A label as a file name part: its text before " (score)", lower case, runs of other characters as '-'."""
    text = re.sub(r"\s*\(.*\)\s*$", "", label).lower()
    return re.sub(r"[^\w]+", "-", text).strip("-_")[:40] or "target"


def _rgb(image: Image.Image) -> Image.Image:
    """An RGB copy for drawing; 16-bit and float grey scaled to 8 bits by their maximum."""
    if image.mode in ("I", "I;16", "I;16B", "I;16L", "F"):
        array = np.asarray(image, np.float32)
        top = float(array.max()) or 1.0
        image = Image.fromarray(np.round(np.clip(array / top, 0, 1) * 255).astype(np.uint8))
    return image.convert("RGB")


def to_size(maps: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Maps ``(T, h, w)`` -> ``(T, H, W)`` float32 by bilinear interpolation, kept in [0, 1]."""
    import torch
    import torch.nn.functional as F

    if len(maps) == 0:
        return np.zeros((0, *size), np.float32)
    if maps.shape[1:] == tuple(size):
        return maps.astype(np.float32)
    resized = F.interpolate(torch.from_numpy(maps.astype(np.float32))[:, None], size=tuple(size), mode="bilinear",
                            align_corners=False)[:, 0]
    return resized.clamp(0, 1).numpy()


def _region_to_size(region: Any, size: tuple[int, int]) -> Any:
    if region is None:
        return None
    region = np.asarray(region, bool)
    if region.shape == tuple(size):
        return region
    picture = Image.fromarray(region.astype(np.uint8) * 255).resize((size[1], size[0]), Image.NEAREST)
    return np.asarray(picture) > 127


def private_copy(module: Any) -> Any:
    """A copy of the model to hook and switch to gradients: predictions that run meanwhile on the original (the
    server's worker pool) never meet an explanation's hooks. The original itself (its state restored after each
    map) where a network cannot be copied."""
    import copy

    try:
        return copy.deepcopy(module)
    except Exception:  # noqa: BLE001 - a tensor that refuses deepcopy (rare): the original, under the lock
        return module


def chosen_layer(module: Any, method: str, layer: str = "") -> str:
    """The layer of ``module`` (an ``ImageModel``) that ``method`` maps at: ``layer`` (checked); "" for the
    default (``default_layer`` at each image's working size, which ``explain_images`` picks per image) and for
    the pixel methods (a ``layer`` given to them is said and left out). CnnkitError for an unknown method or
    layer."""
    from cnnkit.explain.methods import LAYER_METHODS, check_method, find_layer

    check_method(method)
    if method not in LAYER_METHODS:
        if layer:
            LOGGER.warning("--layer %s: %s works on the input pixels, at no layer; --layer is left out", layer, method)
        return ""
    if layer:
        find_layer(module.net, layer, module.meta.model)
    return layer


def explain_images(model: Model, images: Sequence[Any], method: str = "gradcam",
                   request: ExplainRequest | None = None, layer: str = "") -> list[Explanation]:
    """One :class:`Explanation` per image (PIL images; paths and arrays as ``Model.predict`` takes them) of a
    loaded checkpoint (``cnnkit.load``): what its task explains in it (the top-k classes, the predicted classes'
    pixels, each detection, the similarity to ``request.reference``), mapped by ``method`` (see
    ``cnnkit.explain.methods.compute_maps``) at ``layer`` ("" = ``default_layer`` at the image's working size:
    the last stage of the encoder whose map is at least 7 px on its shorter side). The maps are
    made on a copy of the network: ``model`` is unchanged, and may predict in other threads meanwhile.

    CnnkitError for an unknown method, layer or target, or a task with nothing to explain (pretrain).
    """
    from cnnkit.engine.task import ExplainRequest
    from cnnkit.explain.methods import LAYER_METHODS, compute_maps, default_layer

    request = request if request is not None else ExplainRequest()
    module = private_copy(model.module)
    name = chosen_layer(module, method, layer)
    out = []
    for image in images:
        pil = model.to_pil(image)
        targets = model.task.explain_targets(module, pil, request)
        size = targets.original_size if all(targets.original_size) else (pil.height, pil.width)
        used = name or (default_layer(module.net, tuple(targets.inputs.shape[-2:]))
                        if method in LAYER_METHODS else "")
        maps = to_size(compute_maps(module, targets, method, used), size)
        nowhere = [r is not None and not np.any(r) for r in targets.regions]  # before resizing loses a speck
        regions = [_region_to_size(r, size) for r in targets.regions]
        out.append(Explanation(pil, maps, list(targets.labels), method, used, regions,
                               nowhere=nowhere + [False] * (len(targets.labels) - len(nowhere))))
    return out

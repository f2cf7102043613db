"""What each stage of a network's encoder sees in one image (``cnnkit explain --features``): the activations of
every stage as a grid of channels, the first convolution's filters, and a JSON file of the stages' shapes and
receptive fields.

A stage is one resolution of the trunk (``cnnkit.models.stages.trunk_stages``: its children grouped by output
resolution, the last of each; each map of an encoder that returns a list of them). The image is prepared as
``cnnkit.models.trunk.embed_images`` prepares it: resized to the model's input side (its training size), its
channels converted, normalised by the model. Receptive fields are the theoretical ones
(``cnnkit.models.receptive``), at that input size.
"""

from __future__ import annotations

import io
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from PIL import Image
from torch import nn

from cnnkit.files import atomic_write_bytes, json_bytes

if TYPE_CHECKING:
    from cnnkit.models.stages import Stage
    from cnnkit.models.wrapper import ImageModel

MIN_TILE = 48  # small maps are enlarged (nearest) to this side, so that a 7x7 map is not a dot
MAX_TILE = 160  # large maps are shrunk to this side: 32 tiles of 112 px stay one readable picture
GAP = 2  # pixels between tiles
MAX_FILTERS = 64  # first-layer filters drawn (tiles: filters x input channels where they are grey)
CMAPS = ("viridis", "gray")


@dataclass
class StageMap:
    """One stage's activations for one image: ``values`` ``(C, h, w)`` float32."""

    index: int  # 1, 2, ... shallow to deep
    name: str  # the module's name as `cnnkit summary` prints it (':k' for its k-th call)
    target: str  # its name inside the trunk, with its call
    values: np.ndarray


def _image_model(model: Any) -> ImageModel:
    """An ``ImageModel``; a loaded ``cnnkit.loading.Model`` gives its ``.module``."""
    inner = getattr(model, "module", None)
    return inner if isinstance(inner, nn.Module) and hasattr(inner, "meta") else model


def prepare(model: ImageModel, image: Image.Image) -> torch.Tensor:
    """``image`` as the trunk takes it: ``(1, C, S, S)`` normalised float on the model's device, S the model's
    input side (``meta.input_side``), as ``embed_images`` prepares images."""
    from cnnkit.data.images import image_to_array

    meta = model.meta
    array = image_to_array(image, meta.in_chans, meta.input_side, meta.pixel_max)
    batch = torch.from_numpy(array).permute(2, 0, 1)[None]
    return model.normalize(batch.to(next(model.parameters()).device))


def private(model: Any) -> ImageModel:
    """The ``ImageModel``'s private copy (``core.private_copy``: hooks never meet predictions running on the
    original) in evaluation mode, so that no normalisation statistics change."""
    from cnnkit.explain.core import private_copy

    return private_copy(_image_model(model)).eval()


def _stage_maps(model: ImageModel, image: Image.Image) -> tuple[list[StageMap], tuple[int, ...]]:
    """The stages' activations and the input's shape, hooking ``model`` (a ``private`` copy). CnnkitError for a
    network cnnkit has no trunk for."""
    from cnnkit.models.stages import tensor_of, trunk_stages
    from cnnkit.models.trunk import trunk_of

    x = prepare(model, image)
    stages: list[Stage] = trunk_stages(model.net, tuple(x.shape))
    trunk = trunk_of(model.net).module
    seen: dict[str, list[torch.Tensor | None]] = {}

    def hook_for(name: str):
        def hook(_m: nn.Module, _inp: Any, out: Any) -> None:
            seen.setdefault(name, []).append(tensor_of(out))
        return hook

    modules = {s.target.rpartition(":")[0] for s in stages}
    handles = [trunk.get_submodule(name).register_forward_hook(hook_for(name)) for name in modules]
    try:
        with torch.no_grad():
            trunk(x)
    finally:
        for h in handles:
            h.remove()
    maps = []
    for k, stage in enumerate(stages, 1):
        name, _, call = stage.target.rpartition(":")
        out = seen[name][int(call)]
        if out is not None:
            maps.append(StageMap(k, stage.name, stage.target, out[0].detach().float().cpu().numpy()))
    return maps, tuple(x.shape)


def stage_activations(model: ImageModel, image: Image.Image) -> list[tuple[str, np.ndarray]]:
    """(stage name, activations ``(C, h, w)`` float32) of each stage of the model's encoder for ``image`` (a PIL
    image, prepared as the module docstring says), shallow to deep. CnnkitError for a network without a trunk."""
    maps, _ = _stage_maps(private(model), image)
    return [(m.name, m.values) for m in maps]


def strongest(values: np.ndarray, limit: int) -> list[int]:
    """The ``limit`` channels of ``values`` ``(C, h, w)`` of the largest mean activation, largest first."""
    means = values.reshape(len(values), -1).mean(1)
    return [int(i) for i in np.argsort(-means, kind="stable")[:limit]]


def scaled(tile: np.ndarray) -> np.ndarray:
    """``tile`` min-max scaled to [0, 1] (a constant tile: all 0)."""
    tile = np.nan_to_num(tile.astype(np.float32))
    low, high = float(tile.min()), float(tile.max())
    return (tile - low) / (high - low) if high > low else np.zeros_like(tile)


def _colour(tile: np.ndarray, cmap: str) -> np.ndarray:
    """A [0, 1] tile ``(h, w)`` or RGB ``(h, w, 3)`` -> ``(h, w, 3)`` uint8; grey tiles through ``cmap``."""
    if tile.ndim == 3:
        return np.round(tile * 255).astype(np.uint8)
    from matplotlib import colormaps

    return np.round(colormaps[cmap](tile)[..., :3] * 255).astype(np.uint8)


def _resized(tile: np.ndarray) -> np.ndarray:
    """A uint8 tile enlarged (nearest: each unit a block) to at least ``MIN_TILE``, or shrunk to ``MAX_TILE``."""
    h, w = tile.shape[:2]
    if max(h, w) < MIN_TILE:
        factor = math.ceil(MIN_TILE / max(h, w))
        return tile.repeat(factor, 0).repeat(factor, 1)
    if max(h, w) > MAX_TILE:
        scale = MAX_TILE / max(h, w)
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        return np.asarray(Image.fromarray(tile).resize(size, Image.BILINEAR))
    return tile


def grid(tiles: list[np.ndarray], cmap: str = "viridis", columns: int = 0) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """Tiles (each in [0, 1]: grey ``(h, w)`` or RGB ``(h, w, 3)``, all of one shape) -> one RGB uint8 picture
    with ``GAP`` white pixels between them, ``columns`` a row (0: about square), and each tile's top-left corner."""
    drawn = [_resized(_colour(t, cmap)) for t in tiles]
    th, tw = drawn[0].shape[:2]
    columns = columns or math.ceil(math.sqrt(len(drawn)))
    rows = math.ceil(len(drawn) / columns)
    picture = np.full((rows * (th + GAP) - GAP, columns * (tw + GAP) - GAP, 3), 255, np.uint8)
    corners = []
    for i, tile in enumerate(drawn):
        top, left = (i // columns) * (th + GAP), (i % columns) * (tw + GAP)
        picture[top:top + th, left:left + tw] = tile
        corners.append((top, left))
    return picture, corners


def _png(picture: np.ndarray, title: str, labels: list[str], corners: list[tuple[int, int]]) -> bytes:
    """``picture`` under a title (matplotlib's Agg, no display), each tile's label in its corner; PNG bytes."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    dpi, title_px = 100, 18 * (title.count("\n") + 1) + 10
    h, w = picture.shape[:2]
    width = max(w, 520, 7 * max(len(line) for line in title.splitlines()))  # about 7 px a character at 9 pt
    fig = Figure(figsize=(width / dpi, (h + title_px) / dpi), dpi=dpi)
    FigureCanvasAgg(fig)
    ax = fig.add_axes((0.5 - w / width / 2, 0, w / width, h / (h + title_px)))
    ax.imshow(picture, interpolation="nearest")
    ax.set_axis_off()
    for label, (top, left) in zip(labels, corners):
        ax.text(left + 2, top + 2, label, color="white", fontsize=6, va="top", ha="left",
                bbox={"facecolor": "black", "alpha": 0.5, "pad": 0.5, "linewidth": 0})
    fig.text(0.5, 1 - 4 / (h + title_px), title, ha="center", va="top", fontsize=9)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()


def first_conv(model: ImageModel) -> tuple[str, nn.Conv2d] | None:
    """(name in the network, module) of the first 2-D convolution the trunk runs (the network's, without a trunk
    cnnkit knows), or None."""
    from cnnkit.errors import CnnkitError
    from cnnkit.models.trunk import trunk_of

    net = model.net
    try:
        root = trunk_of(net).module
    except CnnkitError:
        root = net
    names = {m: n for n, m in net.named_modules()}
    order: list[nn.Conv2d] = []

    def hook(module: nn.Module, _inp: Any, _out: Any) -> None:
        order.append(module)  # type: ignore[arg-type]

    handles = [m.register_forward_hook(hook) for m in root.modules() if isinstance(m, nn.Conv2d)]
    try:
        with torch.no_grad():
            side = min(model.meta.input_side, 64)
            root(torch.zeros(1, model.meta.in_chans, side, side, device=next(model.parameters()).device))
    except RuntimeError:  # too small for it: the first convolution declared instead
        order = [m for m in root.modules() if isinstance(m, nn.Conv2d)]
    finally:
        for h in handles:
            h.remove()
    return (names.get(order[0], ""), order[0]) if order else None


def filter_tiles(weight: np.ndarray, limit: int = MAX_FILTERS) -> tuple[list[np.ndarray], int]:
    """Tiles of a convolution's ``weight`` ``(out, in, k, k)``: one RGB tile per filter where ``in`` is 3 (each
    filter scaled to its own range), else one grey tile per filter and input channel; and the tiles a row."""
    weight = weight[:limit]
    if weight.shape[1] == 3:
        return [scaled(f).transpose(1, 2, 0) for f in weight], 0
    return [scaled(c) for f in weight for c in f], weight.shape[1] if weight.shape[1] > 1 else 0


def _slug(name: str) -> str:
    return re.sub(r"[^\w.]+", "-", name).strip("-") or "stage"


def write_features(model: ImageModel, image: Image.Image, folder: Path, stem: str, max_channels: int = 32,
                   cmap: str = "viridis") -> list[Path]:
    """Write what the encoder sees in ``image`` into ``folder`` (made if missing), atomically:
    ``<stem>_stage<k>_<name>.png`` per stage (its ``max_channels`` strongest channels by mean activation, each
    scaled to its own range, through ``cmap`` ('viridis' or 'gray'); the title gives the stage's shape C x h x w
    and receptive field), ``<stem>_filters.png`` (the first convolution's filters) and ``features_<stem>.json``
    (stages, shapes, receptive fields, the files). Returns the files written, JSON last.

    ``model``: an ``ImageModel`` (or a loaded ``cnnkit.loading.Model``). CnnkitError for a network cnnkit has no
    trunk for, or an unknown ``cmap``."""
    from cnnkit.errors import CnnkitError
    from cnnkit.models.receptive import receptive_fields
    from cnnkit.models.trunk import trunk_of

    if cmap not in CMAPS:
        raise CnnkitError(f"cmap {cmap}: give one of {', '.join(CMAPS)}")
    module = private(model)
    maps, shape = _stage_maps(module, image)
    fields = receptive_fields(trunk_of(module.net).module, shape, [m.target for m in maps])
    folder = Path(folder)
    written: list[Path] = []
    stages = []
    for stage in maps:
        c, h, w = stage.values.shape
        shown = strongest(stage.values, max_channels)
        label = fields.label(stage.target)
        rf = f"receptive field {label} px" if label else "no receptive field measured"
        stride = 2 ** round(math.log2(shape[-1] / w))  # 32 px -> 15: stride 2 (an unpadded stem loses a pixel)
        title = (f"{stem}: stage {stage.index} '{stage.name}', {c}×{h}×{w} (stride {stride}), {rf}\n"
                 f"{len(shown)} of {c} channels, strongest mean activation first, each scaled to its own range")
        picture, corners = grid([scaled(stage.values[i]) for i in shown], cmap)
        path = folder / f"{stem}_stage{stage.index}_{_slug(stage.name)}.png"
        _write(path, _png(picture, title, [str(i) for i in shown], corners))
        written.append(path)
        stages.append({"index": stage.index, "name": stage.name, "shape": [c, h, w], "stride": stride,
                       "receptive_field": fields.get(stage.target), "clipped": stage.target in fields.clipped,
                       "channels": shown, "picture": path.name})
    filters = _write_filters(module, folder, stem)
    written += [folder / filters["picture"]] if filters else []
    record = {"image": stem, "model": module.meta.model, "input": list(shape[1:]), "stages": stages,
              "filters": filters,
              "receptive_field": "input pixels on a side seen by a stage's centre unit (clipped: cut by the "
                                 "input's border, the true field is larger)"}
    path = folder / Path(stem).parent / f"features_{Path(stem).name}.json"  # beside the pictures
    _write(path, json_bytes(record, indent=2))
    return [*written, path]


def _write_filters(model: ImageModel, folder: Path, stem: str) -> dict | None:
    """``<stem>_filters.png``; its record for the JSON (None for a network without a convolution)."""
    found = first_conv(model)
    if found is None:
        return None
    name, conv = found
    weight = conv.weight.detach().float().cpu().numpy()
    tiles, columns = filter_tiles(weight)
    out, cin, kh, kw = weight.shape
    colour = "RGB" if cin == 3 else "grey, one tile per input channel (a row per filter)" if cin > 1 else "grey"
    title = (f"{stem}: first convolution '{name}', {min(out, MAX_FILTERS)} of {out} filters {cin}×{kh}×{kw}\n"
             f"{colour}, each filter scaled to its own range")
    picture, corners = grid(tiles, "gray", columns)
    labels = [str(i) for i in range(len(tiles))] if cin in (1, 3) else [""] * len(tiles)
    path = folder / f"{stem}_filters.png"
    _write(path, _png(picture, title, labels, corners))
    return {"layer": name, "shape": [out, cin, kh, kw], "tiles": len(tiles), "picture": path.name}


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)  # a stem may hold subfolders
    atomic_write_bytes(path, data)

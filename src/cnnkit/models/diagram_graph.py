"""The blocks and edges of an architecture diagram, from one recorded forward pass (``diagram_trace``).

The network's parts decide how its layers are grouped: a detector (backbone, rpn, roi_heads) draws its
encoder's stages, then one block per part; a segmenter (encoder, decoder) its encoder's stages (split
where the feature maps it hands the decoder are made), its decoder's stages (one per upsampling) and its
head; any other network its trunk (``trunk_of``) and head layer by layer when that stays small, else its
trunk one block per resolution. Edges come from the data: a block consuming another block's output.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import nn

from cnnkit.errors import CnnkitError
from cnnkit.models.diagram_trace import Event, Trace, trace

MAX_BLOCKS = 16  # more layers than this and a network is drawn by stages
UPSAMPLING = ("deconv", "upsample", "unpool")
QUIET = ("norm", "act", "dropout", "identity")  # left out of a stage's description
NORMS = {"BatchNorm": "BN", "FrozenBatchNorm": "frozen BN", "GroupNorm": "GN", "LayerNorm": "LN",
         "InstanceNorm": "IN"}
CONTAINERS = (nn.Sequential, nn.ModuleList, nn.ModuleDict)


@dataclass(frozen=True)
class Edge:
    source: int  # block index
    target: int
    kind: str  # sequential, skip (encoder stage -> a later part), indices (max-pool -> unpool), data (other)


@dataclass
class Block:
    """One box of the diagram. ``out_shape``: its output without the batch dimension (C, H, W) or (features,)."""

    kind: str  # input, conv, deconv, pool, unpool, upsample, fc, dropout, flatten, norm, act, stage,
    # encoder stage, decoder stage, head, fpn, rpn, roi pool, other
    label: str
    out_shape: tuple[int, ...]
    index: int
    detail: str = ""  # what the block holds: "BN + ReLU", "max-pool + 2× BasicBlock"
    note: str = ""  # read with the shape: "per RoI", "5 maps", "proposals"
    level: int | None = None  # the map's resolution, log2(input side / side); None: not an image-aligned map
    edges_in: list[Edge] = field(default_factory=list)

    @property
    def shape_text(self) -> str:
        text = "×".join(str(d) for d in self.out_shape) if self.out_shape else "-"
        return f"{text} {self.note}".strip()


@dataclass
class Section:
    paths: tuple[str, ...]  # the modules it holds (by name); () holds whatever no other section does
    mode: str  # stages, upsampling, one, fine, resolution
    kind: str = ""
    title: str = ""
    aligned: bool = True  # its maps are image-aligned (a RoI's 7x7 map is not)
    features: str = ""  # stages: the watched module whose output (or input) lists the stage outputs


def _short(event: Event, channels: bool) -> str:
    """A leaf in a few words: "conv 3×3, 32 /2", "max-pool 2×2", "fc 128", "dropout 0.5"."""
    m, kind = event.module, event.kind
    if m is None:
        return kind
    if kind in ("conv", "deconv"):
        k = "×".join(str(s) for s in m.kernel_size)  # type: ignore[union-attr]
        depthwise = "dw " if kind == "conv" and 1 < m.groups == m.in_channels else ""  # type: ignore[union-attr]
        text = f"{depthwise}{kind} {k}" + (f", {m.out_channels}" if channels else "")  # type: ignore[union-attr]
        stride = m.stride[0]  # type: ignore[union-attr, index]
        return text + (f" /{stride}" if kind == "conv" and stride > 1 else "")
    name = type(m).__name__
    if kind == "pool":
        how = "max" if "Max" in name else "avg"
        if "Adaptive" in name:
            return f"global {how}-pool" if event.out_shape[-1:] == (1,) else f"adaptive {how}-pool"
        size = getattr(m, "kernel_size", "")
        return f"{how}-pool {size}×{size}" if isinstance(size, int) else f"{how}-pool"
    if kind == "fc":
        return f"fc {m.out_features}" if channels else "fc"  # type: ignore[union-attr]
    if kind == "dropout":
        return f"dropout {m.p:g}"  # type: ignore[union-attr]
    if kind == "norm":
        return next((short for key, short in NORMS.items() if name.startswith(key)), name)
    return name if kind in ("act", "other") else kind


def _unit(net: nn.Module, event: Event, root: str) -> tuple[str, str]:
    """(key, description) of the part of a section that ``event`` belongs to: the first module below the
    section's root that is not a container (a residual block, a conv), or the event itself."""
    if event.module is None or event.path == root:
        return f"#{event.index}", _short(event, channels=False)
    parts = event.path[len(root) + 1:].split(".") if root else event.path.split(".")
    path = root
    for part in parts:
        path = f"{path}.{part}" if path else part
        module = net.get_submodule(path)
        if not isinstance(module, CONTAINERS):
            if len(list(module.modules())) > 2:  # a block of its own (a wrapper of one layer is that layer)
                return path, type(module).__name__
            break
    return f"#{event.index}", _short(event, channels=False)


def describe(net: nn.Module, events: list[Event], section: Section, limit: int = 40) -> str:
    """"deconv 2×2 + 2× conv 3×3": a group's parts in order, repeats counted; beyond ``limit`` characters,
    the class of the section's module."""
    units: list[tuple[str, str]] = []
    for event in events:
        key, text = _unit(net, event, _root(section, event.path) or "")
        if (units and units[-1][0] == key) or (key.startswith("#") and event.kind in QUIET):
            continue
        units.append((key, text))
    runs: list[list] = []
    for _, text in units:
        if runs and runs[-1][0] == text:
            runs[-1][1] += 1
        else:
            runs.append([text, 1])
    out = " + ".join(text if n == 1 else f"{n}× {text}" for text, n in runs)
    if len(out) > limit and section.mode == "one":  # a part known by its class: FeaturePyramidNetwork
        out = type(net.get_submodule(section.paths[0])).__name__
    return out


def _title(name: str) -> str:
    return name.upper() if len(name) <= 3 else name.replace("_", " ").replace("roi", "RoI")


def sections_of(net: nn.Module) -> list[Section]:
    """How ``net``'s modules are grouped into blocks, by the parts it has (see the module's docstring)."""
    if all(hasattr(net, a) for a in ("backbone", "rpn", "roi_heads")):
        encoder = "backbone.encoder" if hasattr(net.backbone, "encoder") else "backbone.body"
        out = [Section((encoder,), "stages", "encoder stage", features=encoder)]
        out += [Section((f"backbone.{n}",), "one", n, _title(n)) for n, _ in net.backbone.named_children()
                if f"backbone.{n}" != encoder]
        out.append(Section(("rpn",), "one", "rpn", "RPN", aligned=False))
        for n, _ in net.roi_heads.named_children():
            kind = "roi pool" if "pool" in n else "head" if "predictor" in n else ""
            out.append(Section((f"roi_heads.{n}",), "one", kind, _title(n), aligned=False))
        return out
    if hasattr(net, "encoder") and hasattr(net, "decoder") and hasattr(net.encoder, "strides"):
        out = [Section(("encoder",), "stages", "encoder stage", features="encoder"),
               Section(("decoder",), "upsampling", "decoder stage")]
        return out + [Section((n,), "one", "head" if n == "head" else "", _title(n))
                      for n, _ in net.named_children() if n not in ("encoder", "decoder")]
    from cnnkit.models.trunk import trunk_of

    names = {m: n for n, m in net.named_modules()}
    try:
        trunk = trunk_of(net).module
    except CnnkitError:  # a network cnnkit cannot take apart: drawn layer by layer
        return [Section((), "fine")]
    paths = tuple(names[m] for m in trunk.children() if m in names)
    return [Section(paths, "resolution"), Section((), "fine")] if paths else [Section((), "fine")]


def _root(section: Section, path: str) -> str | None:
    """The path of ``section`` that holds the module named ``path`` ("" for a catch-all section)."""
    if not section.paths:
        return ""
    return next((p for p in section.paths if path == p or path.startswith(p + ".")), None)


def _split(events: list[Event], starts: list[bool]) -> list[list[Event]]:
    groups: list[list[Event]] = []
    for event, start in zip(events, starts):
        if start or not groups:
            groups.append([])
        groups[-1].append(event)
    return groups


def _fine(events: list[Event]) -> list[list[Event]]:
    """One group per layer; a norm or an activation joins the layer before it (conv + BN + ReLU: one block)."""
    kept = [e for e in events if e.kind != "identity"]
    return _split(kept, [e.kind not in ("norm", "act") for e in kept])


def _by_resolution(events: list[Event], units: list[str]) -> list[list[Event]]:
    """Consecutive parts with outputs of one resolution make one group (a ResNet's layer2 blocks)."""
    last: dict[str, tuple[int, ...]] = {}
    for event, unit in zip(events, units):
        last[unit] = event.out_shape[2:]
    starts = [i == 0 or (units[i] != units[i - 1] and last[units[i]] != last[units[i - 1]])
              for i in range(len(events))]
    return _split(events, starts)


def _boundaries(trace: Trace, section: Section) -> list[int]:
    """The events that make each feature map an encoder hands on (the ends of its stages)."""
    maps = trace.outputs.get(section.features) or trace.inputs.get("decoder") or []
    ends = {max(i for i, indices in origin if not indices) for _, origin in maps if origin}
    return sorted(ends)


def _groups(net: nn.Module, trace: Trace, section: Section, events: list[Event]) -> list[list[Event]]:
    if section.mode == "stages":
        ends = _boundaries(trace, section)
        return _split(events, [i > 0 and events[i - 1].index in ends for i in range(len(events))])
    if section.mode == "upsampling":
        groups: list[list[Event]] = []
        for event in events:
            if not groups or (event.kind in UPSAMPLING and any(e.kind not in UPSAMPLING for e in groups[-1])):
                groups.append([])
            groups[-1].append(event)
        return groups
    if section.mode == "one":
        return [events]
    if section.mode == "resolution":
        units = [_unit(net, e, _root(section, e.path) or "")[0] for e in events]
        return _by_resolution(events, units)
    return _fine(events)


def _part(trace: Trace, section: Section, events: list[Event]) -> tuple[str, tuple[int, ...], str]:
    """(kind, output shape, note) of a part drawn as one block (a feature pyramid, a box head)."""
    maps = trace.outputs.get(section.paths[0], [])
    shape = maps[0][0] if maps else events[-1].out_shape
    kind = section.kind or next((k for k in ("deconv", "conv", "fc") if any(e.kind == k for e in events)), "other")
    note = f"({len(maps)} maps)" if len(maps) > 1 and all(len(s) == 4 for s, _ in maps) else ""
    if not section.aligned:
        note = "proposals" if section.kind == "rpn" else "per RoI"
    return kind, shape, note


def _block(net: nn.Module, trace: Trace, section: Section, events: list[Event], number: int, side: int) -> Block:
    """The block of one group of events; ``number`` counts the section's groups from 1."""
    shape, note, detail = events[-1].out_shape, "", describe(net, events, section)
    if section.mode == "stages":
        kind, label = section.kind, f"encoder {number}"
        ends = _boundaries(trace, section)
        shape = next((e.out_shape for e in reversed(events) if e.index in ends), shape)
    elif section.mode == "upsampling":
        kind, label = section.kind, f"decoder {number}"
    elif section.mode == "one":
        label = section.title
        kind, shape, note = _part(trace, section, events)
    elif section.mode == "resolution" or sum(e.kind not in ("norm", "act") for e in events) > 1:
        kind, label = "stage", f"stage {number}"
    else:  # one layer, with the norm and activation after it
        kind, label = events[0].kind, _short(events[0], channels=True)
        detail = " + ".join(_short(e, channels=False) for e in events[1:])
    out_shape = shape if section.kind == "rpn" else shape[1:]  # proposals: a list per image, no batch axis
    return Block(kind, label, out_shape, 0, detail, note, _level(shape, side, section.aligned))


def _level(shape: tuple[int, ...], side: int, aligned: bool) -> int | None:
    if not aligned or len(shape) != 4 or shape[2] < 1:
        return None
    return max(0, round(math.log2(side / shape[2])))


def _edges(blocks: list[Block], events: list[Event], block_of: dict[int, int]) -> None:
    found: set[tuple[int, int, str]] = set()
    for event in events:
        target = block_of.get(event.index)
        for source_event, indices in event.sources:
            source = block_of.get(source_event)
            if target is None or source is None or source >= target:
                continue
            kind = "indices" if indices else "sequential" if source == target - 1 else \
                "skip" if blocks[source].kind == "encoder stage" else "data"
            found.add((source, target, kind))
    pairs = {(a, b) for a, b, _ in found}
    for source, target, kind in sorted(found, key=lambda e: (e[1], e[0], e[2])):
        if kind == "data" and _reachable(pairs, source, target):
            continue  # a path through the blocks between says it already: fewer lines to read
        blocks[target].edges_in.append(Edge(source, target, kind))


def _reachable(edges: set[tuple[int, int]], source: int, target: int) -> bool:
    """Whether ``target`` is reached from ``source`` by edges other than the direct one."""
    todo = [b for (a, b) in edges if a == source and b != target]
    seen: set[int] = set()
    while todo:
        node = todo.pop()
        if node == target:
            return True
        if node not in seen:
            seen.add(node)
            todo += [b for (a, b) in edges if a == node]
    return False


def architecture(net: nn.Module, input_shape: tuple[int, ...]) -> list[Block]:
    """The blocks of ``net`` in call order, block 0 the input; each block lists the edges into it
    (``edges_in``; ``edges(blocks)`` gives them all). ``input_shape``: (N, C, H, W) or (C, H, W).

    Runs one forward pass on zeros (eval mode; the mode is restored). Raises CnnkitError when the network
    cannot run at this size."""
    shape = tuple(int(s) for s in input_shape)
    shape = (1, *shape) if len(shape) == 3 else shape
    if len(shape) != 4 or min(shape) < 1:
        raise CnnkitError(f"input shape {list(input_shape)}: give (N, C, H, W) or (C, H, W), all positive")
    sections = sections_of(net)
    watch = tuple(p for s in sections for p in (s.features, *s.paths) if p) + ("decoder",)
    param = next((p for p in net.parameters() if p.is_floating_point()), torch.zeros(()))
    try:
        recorded = trace(net, torch.zeros(shape, device=param.device, dtype=param.dtype), watch)
    except (RuntimeError, ValueError, IndexError) as e:
        raise CnnkitError(f"input {list(shape)}: {type(net).__name__} cannot run on inputs of this shape "
                          f"({str(e).splitlines()[0][:120]}); give its input channels and a size it takes") from None
    by_section: list[list[Event]] = [[] for _ in sections]
    for event in recorded.events[1:]:
        place = next((i for i, s in enumerate(sections) if s.paths and _root(s, event.path) is not None),
                     next((i for i, s in enumerate(sections) if not s.paths), None))
        if place is not None:
            by_section[place].append(event)
    if sum(len(_fine(events)) for events in by_section) <= MAX_BLOCKS:  # small enough to draw layer by layer
        for section in sections:
            section.mode = "fine" if section.mode == "resolution" else section.mode
    grouped = [(section, group) for section, events in zip(sections, by_section)
               for group in _groups(net, recorded, section, events) if group]
    grouped.sort(key=lambda sg: sg[1][0].index)
    blocks = [Block("input", "input", shape[1:], 0, level=0)]
    block_of = {0: 0}
    counts: dict[int, int] = {}
    for section, group in grouped:
        if all(e.kind == "identity" for e in group):
            continue  # nothing drawn for a part that passes its input on (FCN's head)
        counts[id(section)] = counts.get(id(section), 0) + 1
        block = _block(net, recorded, section, group, counts[id(section)], shape[2])
        block.index = len(blocks)
        blocks.append(block)
        block_of.update({e.index: block.index for e in group})
    _edges(blocks, recorded.events, block_of)
    return blocks


def edges(blocks: list[Block]) -> list[Edge]:
    """Every edge of ``architecture``'s blocks, by target then source."""
    return [e for b in blocks for e in b.edges_in]

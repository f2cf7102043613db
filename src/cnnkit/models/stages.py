"""The stages of a network's trunk: where its resolution changes (the pictures of ``explain --features``, the
stage rows of ``cnnkit summary``'s receptive fields)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from cnnkit.errors import CnnkitError


@dataclass(frozen=True)
class Stage:
    """One stage of a network's trunk (``trunk_stages``): the output of one call of one module."""

    name: str  # the module's name in the network, as `cnnkit summary` prints it (':k' added for its k-th call
    # when it is called more than once): a name for ``receptive_fields(net, ...)``
    target: str  # '<module's name inside trunk_of(net).module>:<call>': for hooks on the trunk alone


def tensor_of(out: object) -> torch.Tensor | None:
    """The feature map in a module's output: the tensor itself, or the first of a max-pool's (values, indices)."""
    if isinstance(out, torch.Tensor):
        return out
    if (isinstance(out, tuple) and len(out) == 2 and isinstance(out[0], torch.Tensor)
            and isinstance(out[1], torch.Tensor) and not out[1].is_floating_point()):
        return out[0]
    return None


def trunk_stages(net: nn.Module, input_shape: tuple[int, ...]) -> list[Stage]:
    """The stages of ``net``'s trunk (``cnnkit.models.trunk.trunk_of``), shallow to deep: an encoder's feature
    maps where it returns a list of them (each map a stage), else the trunk's children grouped by output
    resolution, the last child of each resolution a stage (a ``Sequential`` spanning several resolutions is
    taken apart first). Found by one forward of the trunk on zeros of ``input_shape`` (N, C, H, W).
    CnnkitError for a network cnnkit has no trunk for."""
    from cnnkit.models.features import EncoderTrunk
    from cnnkit.models.trunk import trunk_of

    trunk = trunk_of(net).module
    order: list[nn.Module] = []  # modules in the order their first calls end
    calls: dict[nn.Module, list] = {}

    def hook(module: nn.Module, _inp: Any, out: Any) -> None:
        if module not in calls:
            order.append(module)
        calls.setdefault(module, []).append(tensor_of(out))

    handles = [m.register_forward_hook(hook) for m in trunk.modules()]
    modes = {m: m.training for m in trunk.modules()}  # each module's own: a new trunk wrapper says "training"
    trunk.eval()
    try:
        with torch.no_grad():
            zeros = torch.zeros(input_shape, device=next(trunk.parameters(), torch.empty(0)).device)
            encoder = trunk.encoder if isinstance(trunk, EncoderTrunk) else None
            maps = encoder(zeros) if encoder is not None else trunk(zeros)
    finally:
        for m, mode in modes.items():
            m.train(mode)
        for h in handles:
            h.remove()
    if encoder is not None:
        made = [_maker(fmap, order, calls) for fmap in maps]
    else:
        units = _units(trunk, order, calls)
        made = [(u, len(calls[u]) - 1) for u, nxt in zip(units, [*units[1:], None])
                if _grid(calls[u][-1]) and (nxt is None or _grid(calls[nxt][-1]) != _grid(calls[u][-1]))]
    in_net = {m: n for n, m in net.named_modules()}
    in_trunk = {m: n for n, m in trunk.named_modules()}
    stages = []
    for module, call in made:
        name = in_net.get(module, in_trunk[module])
        stages.append(Stage(name if len(calls[module]) == 1 else f"{name}:{call}", f"{in_trunk[module]}:{call}"))
    return stages


def _grid(out: torch.Tensor | None) -> tuple[int, ...]:
    """The spatial size of a feature map ((H, W) of a 4-D tensor, else ())."""
    return tuple(out.shape[-2:]) if out is not None and out.ndim == 4 else ()


def _units(parent: nn.Module, order: list[nn.Module], calls: dict) -> list[nn.Module]:
    """``parent``'s children in call order, a ``Sequential`` whose children end at several resolutions
    replaced by them (recursively)."""
    kids = sorted((m for m in parent.children() if m in calls), key=order.index)
    units: list[nn.Module] = []
    for kid in kids:
        grids = {_grid(calls[k][-1]) for k in kid.children() if k in calls}
        units += _units(kid, order, calls) if isinstance(kid, nn.Sequential) and len(grids) > 1 else [kid]
    return units


def _maker(fmap: torch.Tensor, order: list[nn.Module], calls: dict) -> tuple[nn.Module, int]:
    """The outermost module (and its call) that returned the encoder's feature map ``fmap``."""
    found = None
    for module in order:  # outer modules end after inner ones: the last match is the outermost
        for call, out in enumerate(calls[module]):
            if out is fmap:
                found = (module, call)
    if found is None:
        raise CnnkitError(f"a feature map {list(fmap.shape)} of the encoder: no module returns it, so its stage "
                          "has no name; explain another layer with --layer")
    return found

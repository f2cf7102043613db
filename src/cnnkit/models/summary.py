"""Layer tables and FLOP counts. FLOPs follow torch.utils.flop_counter: one multiply-add = 2 FLOPs."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from cnnkit.errors import CnnkitError
from cnnkit.log import LOGGER
from cnnkit.meta import ModelMeta
from cnnkit.models.receptive import row_fields
from cnnkit.models.stages import tensor_of


@dataclass
class LayerRow:
    name: str
    kind: str
    out_shape: tuple
    params: int
    flops: int
    rf: str = ""  # receptive field in input pixels on a side: '43', '>=224' (clipped by the input), '' (none)


DEFAULT_SIDE = 224  # the input side of a card trained at native size (imgsz 0) without a crop


def card_input_shape(meta: ModelMeta, imgsz: int = 0, in_chans: int = 0) -> tuple[int, int, int, int]:
    """The (1, C, H, W) input a model card's network is summarised and drawn at: ``in_chans`` else the card's;
    an ``imgsz`` square else the card's training size, else its crop (H, W; segmenters and instance models
    trained at native size), else 224."""
    channels = in_chans or meta.in_chans
    if imgsz or meta.imgsz:
        side = int(imgsz or meta.imgsz)
        return 1, channels, side, side
    height, width = (tuple(meta.crop) * 2)[:2] if meta.crop else (DEFAULT_SIDE, DEFAULT_SIDE)
    return 1, channels, int(height), int(width)


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def count_flops(model: nn.Module, input_shape: tuple[int, ...]) -> int:
    """FLOPs of one forward pass on a zero tensor of ``input_shape`` (N, C, H, W)."""
    model.eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(torch.zeros(input_shape))
    return int(counter.get_total_flops())


def layer_table(model: nn.Module, input_shape: tuple[int, ...], receptive: bool = True) -> list[LayerRow]:
    """One row per leaf module call, in call order: output shape (a max-pool's values where it also returns its
    indices), own parameters (on its first call only, so that the column sums to the model's) and that call's
    FLOPs; with ``receptive``, the receptive field of convolutions, pools and stage outputs
    (``cnnkit.models.receptive.row_fields``). A module called several times (a U-Net's one pool) has a row per
    call, each with its call's shape, FLOPs and field."""
    model.eval()
    rows: list[LayerRow] = []
    names = {m: n for n, m in model.named_modules()}
    counter = FlopCounterMode(display=False)
    seen: set[nn.Module] = set()
    started: list[int] = []  # the counter's total when each running leaf call began

    def pre_hook(_module: nn.Module, _inp) -> None:
        started.append(counter.get_total_flops())

    def hook(module: nn.Module, _inp, out) -> None:
        tensor = tensor_of(out)
        shape = tuple(tensor.shape) if tensor is not None else ()
        own = 0 if module in seen else sum(p.numel() for p in module.parameters(recurse=False))
        seen.add(module)
        flops = int(counter.get_total_flops() - started.pop()) if started else 0
        rows.append(LayerRow(names[module], type(module).__name__, shape, own, flops))

    leaves = [m for m in model.modules() if not list(m.children())]
    handles = [m.register_forward_pre_hook(pre_hook) for m in leaves]
    handles += [m.register_forward_hook(hook) for m in leaves]
    try:
        with torch.no_grad(), counter:
            model(torch.zeros(input_shape))
    finally:
        for h in handles:
            h.remove()
    if receptive:
        try:
            labels = row_fields(model, input_shape, [(r.name, r.kind, r.out_shape) for r in rows])
        except (RuntimeError, ValueError, TypeError, CnnkitError) as e:  # a network the measure cannot run
            LOGGER.warning(f"receptive fields not measured ({str(e).splitlines()[0][:120]})")
            labels = [""] * len(rows)
        for row, label in zip(rows, labels):
            row.rf = label
    return rows


def format_table(rows: list[LayerRow], total_flops: int) -> str:
    width = max(10, *(len(r.name) for r in rows))
    rf = any(r.rf for r in rows)  # the receptive-field column, where layer_table measured one
    lines = [f"{'layer':<{width}} {'type':<18} {'output shape':<22} {'params':>10} {'MFLOPs':>10}"
             + (f" {'RF':>7}" if rf else "")]
    for r in rows:
        lines.append(f"{r.name:<{width}} {r.kind:<18} {str(list(r.out_shape)):<22} {r.params:>10,} "
                     f"{r.flops / 1e6:>10.2f}" + (f" {r.rf:>7}" if rf else ""))
    total_params = sum(r.params for r in rows)
    lines.append(f"{'total':<{width}} {'':<18} {'':<22} {total_params:>10,} {total_flops / 1e6:>10.2f}")
    if rf:
        lines.append("RF: receptive field of the centre unit, in input pixels on a side (>=N: cut by the input's "
                     "border; a larger --imgsz shows it whole)")
    return "\n".join(lines)

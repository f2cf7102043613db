"""One forward pass recorded for the architecture diagram: every leaf module's call, in call order, with
its output shape and which earlier calls its inputs came from.

Module hooks alone see what a module returns, not what happens between modules (``torch.cat`` of a
skip, a scatter with pooling indices, an interpolation). A ``TorchFunctionMode`` sees every torch
function, so each tensor carries the calls it was computed from (its *origin*) through any functional
code, and a module's inputs name the earlier calls that feed it: skip connections and pooling indices
are found from the data, for any network, not from per-model rules.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode
from torch.utils.weak import WeakTensorKeyDictionary

# (event index, whether the value is pooling indices)
Source = tuple[int, bool]

INTERPOLATIONS = {F.interpolate, F.upsample, F.upsample_bilinear, F.upsample_nearest}


@dataclass
class Event:
    index: int
    path: str  # the module's name in the network; a functional op: the name of the module that ran it
    module: nn.Module | None  # None for a functional op (an unpooling or an interpolation between modules)
    kind: str  # input, conv, deconv, pool, unpool, upsample, norm, act, fc, dropout, flatten, identity, other
    out_shape: tuple[int, ...]
    sources: set[Source] = field(default_factory=set)


@dataclass
class Trace:
    events: list[Event]
    # watched module name -> (shape, origin) of each tensor of its output / first positional input, as it was
    # when the module returned (later in-place operations may change the origin of those tensors)
    outputs: dict[str, list[tuple[tuple[int, ...], set[Source]]]]
    inputs: dict[str, list[tuple[tuple[int, ...], set[Source]]]]
    origin: WeakTensorKeyDictionary  # tensor -> its origin (a frozenset of sources), while the tensor lives

    def origin_of(self, value: Any) -> set[Source]:
        out: set[Source] = set()
        for t in tensors(value):
            out |= self.origin.get(t, frozenset())
        return out


def tensors(value: Any) -> Iterator[torch.Tensor]:
    """The tensors in ``value``: a tensor, or lists, tuples and dicts of them (any depth)."""
    if isinstance(value, torch.Tensor):
        yield value
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from tensors(v)
    elif isinstance(value, dict):
        for v in value.values():
            yield from tensors(v)


def first_shape(value: Any) -> tuple[int, ...]:
    return next((tuple(t.shape) for t in tensors(value)), ())


def leaf_kind(module: nn.Module) -> str:
    name = type(module).__name__
    if isinstance(module, nn.modules.conv._ConvTransposeNd):
        return "deconv"
    if isinstance(module, nn.modules.conv._ConvNd):
        return "conv"
    if isinstance(module, (nn.MaxUnpool1d, nn.MaxUnpool2d, nn.MaxUnpool3d)):
        return "unpool"
    if "Pool" in name:
        return "pool"
    if isinstance(module, nn.Linear):
        return "fc"
    if "Dropout" in name:
        return "dropout" if getattr(module, "p", 1) else "identity"
    if "Norm" in name:
        return "norm"
    if type(module).__module__ == nn.modules.activation.__name__:
        return "act"
    if isinstance(module, nn.Flatten):
        return "flatten"
    if isinstance(module, nn.Upsample):
        return "upsample"
    if isinstance(module, nn.Identity):
        return "identity"
    return "other"


class Tracer(TorchFunctionMode):
    """Records leaf calls and tensor origins while active; ``watch``: composite modules whose first
    input and output are kept (an encoder's feature maps, a decoder's inputs)."""

    def __init__(self, net: nn.Module, watch: tuple[str, ...] = ()):
        super().__init__()
        self.names = {m: n for n, m in net.named_modules()}
        self.watch = set(watch)
        self.trace = Trace([], {}, {}, WeakTensorKeyDictionary())
        self.thread = threading.get_ident()  # hooks fire in any thread that runs the network: only this one counts
        self.stack: list[str] = []
        self.in_leaf = 0
        self.pending: list[set[Source]] = []

    def tag(self, value: Any, sources: frozenset[Source]) -> None:
        for t in tensors(value):
            self.trace.origin[t] = sources

    def snapshot(self, value: Any) -> list[tuple[tuple[int, ...], set[Source]]]:
        return [(tuple(t.shape), self.trace.origin_of(t)) for t in tensors(value)]

    def __torch_function__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        sources = self.trace.origin_of((args, kwargs))
        if not sources or not any(True for _ in tensors(out)):
            return out
        indices = {s for s in sources if s[1]}
        if len(sources) == 1 and getattr(func, "__name__", "") in ("view", "reshape"):
            (index, _), = sources
            if self.trace.events[index].module is None:  # a functional event's flat result given its shape
                self.trace.events[index].out_shape = first_shape(out)
        if not self.in_leaf and (func in INTERPOLATIONS or (indices and len(indices) < len(sources))):
            # between modules: an interpolation, or values put back at pooled positions (unpooling)
            kind = "upsample" if func in INTERPOLATIONS else "unpool"
            event = Event(len(self.trace.events), self.stack[-1] if self.stack else "", None, kind,
                          first_shape(out), set(sources))
            self.trace.events.append(event)
            self.tag(out, frozenset({(event.index, False)}))
        else:
            self.tag(out, frozenset(sources))
        return out

    def pre_hook(self, module: nn.Module, args: tuple, kwargs: dict) -> None:
        if threading.get_ident() != self.thread:
            return
        name = self.names[module]
        self.stack.append(name)
        if name in self.watch and name not in self.trace.inputs and args:
            self.trace.inputs[name] = self.snapshot(args[0])
        if not list(module.children()):
            self.in_leaf += 1
            self.pending.append(self.trace.origin_of((args, kwargs)))

    def post_hook(self, module: nn.Module, args: tuple, out: Any) -> None:
        if threading.get_ident() != self.thread:
            return
        name = self.stack.pop()
        if name in self.watch and name not in self.trace.outputs:
            self.trace.outputs[name] = self.snapshot(out)
        if list(module.children()):
            return
        self.in_leaf -= 1
        sources = self.pending.pop()
        kind = leaf_kind(module)
        if kind == "other" and args and out is args[0]:
            kind = "identity"  # a layer that passes its input on (an upsampling by 1)
        event = Event(len(self.trace.events), name, module, kind, first_shape(out), sources)
        self.trace.events.append(event)
        if kind == "identity":
            return  # passes its input's origin through
        if isinstance(out, tuple) and kind == "pool":  # (values, indices) of return_indices=True
            self.tag(out[0], frozenset({(event.index, False)}))
            self.tag(out[1:], frozenset({(event.index, True)}))
        else:
            self.tag(out, frozenset({(event.index, False)}))


@torch.no_grad()
def trace(net: nn.Module, x: torch.Tensor, watch: tuple[str, ...] = ()) -> Trace:
    """Run ``net(x)`` in eval mode once, recording it (the network's mode is restored afterwards)."""
    tracer = Tracer(net, watch)
    handles = []
    for module in net.modules():
        handles.append(module.register_forward_pre_hook(tracer.pre_hook, with_kwargs=True))
        handles.append(module.register_forward_hook(tracer.post_hook))
    was_training = net.training
    net.eval()
    tracer.trace.events.append(Event(0, "", None, "input", tuple(x.shape)))
    tracer.tag(x, frozenset({(0, False)}))
    try:
        with tracer:
            net(x)
    finally:
        for h in handles:
            h.remove()
        net.train(was_training)
    return tracer.trace

"""Theoretical receptive fields, measured by gradients.

The receptive field of a unit is the set of input pixels that can change it. It is measured on a copy of
the network made linear and positive: every convolution's and linear layer's weights a positive constant
(1 / fan-in) and biases 0, normalisations and activations the identity, max-pools replaced by average pools
of the same window (a max-pool's gradient reaches one input of the window; an average's reaches all), on an
input of ones. With no weight below 0 nothing cancels: the non-zero input gradient of the centre unit of a
module's output is exactly its theoretical receptive field, whatever the wiring: branches and residual paths (a
ResNet's downsample), concatenations and dilations count without a rule for each. Reported as the pixels on a
side (the larger of its height and width); a field that reaches the input's border is clipped, and reads
">= side".

Only the gradient's support counts, so the copy runs in float32 (float64's CPU kernels were 10 to 200 times
slower) and the gradient is set to 1 wherever it is not 0 after every convolution and pool: at a field's edge
it would otherwise shrink by about 1/k a layer and underflow in a deep network. A convolution of constant
weights is computed as what it is, a box filter of the channels' mean, and the field is measured on a strip of
the input (a field's height does not depend on the image's width): the 59 fields of a ResNet-50's layer table
at 224 px take a fraction of a second on a CPU.
Global pooling (an adaptive pool to one pixel) passes no gradient: the field is what a unit sees through its
local paths, not the image-wide context of squeeze-and-excitation gates (the identity in the copy) or DeepLab's
image pooling, and a unit reached only through it (a classifier's head) has none. Max-pools and global means
called as functions elsewhere (``F.max_pool2d``, ``x.mean((2, 3))`` in a forward) are not seen: the former
understate a field, the latter make it the whole image.

Reference: Araujo, Norris and Sim, "Computing Receptive Fields of Convolutional Neural Networks",
Distill 2019 (https://distill.pub/2019/computing-receptive-fields). ResNet-18: conv1 7, maxpool 11,
layer1 43, layer2 99, layer3 211, layer4 435 pixels.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from cnnkit.errors import CnnkitError
from cnnkit.models.stages import Stage, tensor_of, trunk_stages

# elementwise activations: the identity in the positive copy (ReLU6 and Hardsigmoid saturate, and a
# saturated unit's zero gradient would hide the pixels behind it)
ACTIVATIONS = (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.PReLU, nn.ELU, nn.SELU, nn.CELU, nn.GELU, nn.SiLU, nn.Mish,
               nn.Hardswish, nn.Hardsigmoid, nn.Hardtanh, nn.Sigmoid, nn.Tanh, nn.Softplus)
CONVS = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)
# BatchNorm2d, FrozenBatchNorm2d, GroupNorm, LayerNorm2d, timm's BatchNormAct2d; not Conv2dNormActivation
NORM = re.compile(r"Norm(Act)?(\d+d)?$")
# squeeze-and-excitation gates (timm's take a functional global mean): the identity, as a global pool's output
# passes no gradient (the module's docstring)
GATE = re.compile(r"SqueezeExcit|SEModule|EffectiveSE|EcaModule")
PROBE = 128  # the side of the image that finds a trunk's stages for a layer table
NARROW = 32  # the strips' narrow side: a stride-32 trunk still leaves its deepest map a pixel across


class ReceptiveFields(dict[str, int]):
    """Module name -> receptive field in input pixels on a side; ``clipped`` holds the names whose field
    reached the input's border (the true field is at least that side: print it with ``label``)."""

    def __init__(self) -> None:
        super().__init__()
        self.clipped: set[str] = set()

    def label(self, name: str) -> str:
        """'43', '>=224' (clipped) or '' (not measured)."""
        if name not in self:
            return ""
        return f">={self[name]}" if name in self.clipped else str(self[name])


class _Reached(Exception):
    """Raised by a hook once the measured output exists: the rest of the network need not run."""

    def __init__(self, output: object):
        super().__init__()
        self.output = output


def _identity(x: torch.Tensor, *_args: Any, **_kw: Any) -> torch.Tensor:
    return x


def _pair(v: int | tuple[int, ...]) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else (int(v[0]), int(v[-1]))


def _pooled_size(n: int, k: int, s: int, p: int, d: int, ceil: bool) -> int:
    """A max-pool's output size along one side (PyTorch's rule: a last window must start inside the input)."""
    span = n + 2 * p - d * (k - 1) - 1
    out = (span + (s - 1 if ceil else 0)) // s + 1
    return out - 1 if ceil and (out - 1) * s >= n + p else out


def _window_mean(pool: nn.MaxPool2d) -> Callable[[torch.Tensor], Any]:
    """A forward averaging ``pool``'s windows (kernel, stride, padding, dilation, ceil mode), of its return type."""
    k, s, p, d = (_pair(v) for v in (pool.kernel_size, pool.stride or pool.kernel_size, pool.padding,
                                     pool.dilation))

    def forward(x: torch.Tensor) -> Any:
        if d == (1, 1):  # the same windows as the max-pool's, ceil mode included
            y = F.avg_pool2d(x, k, s, p, ceil_mode=pool.ceil_mode)
        else:
            y = _dilated_mean(x, k, s, p, d, pool.ceil_mode)
        if pool.return_indices:  # SegNet's unpooling needs indices: the real max-pool's, of no gradient
            return y, F.max_pool2d(x.detach(), k, s, p, d, ceil_mode=pool.ceil_mode, return_indices=True)[1]
        return y

    return forward


def _dilated_mean(x: torch.Tensor, k: tuple[int, int], s: tuple[int, int], p: tuple[int, int],
                  d: tuple[int, int], ceil: bool) -> torch.Tensor:
    """The mean over a dilated max-pool's windows (which ``avg_pool2d`` has no dilation for)."""
    c, sides = x.shape[1], x.shape[-2:]
    out = [_pooled_size(n, kk, ss, pp, dd, ceil) for n, kk, ss, pp, dd in zip(sides, k, s, p, d)]
    # pad the far side so that the windows ceil mode adds exist for the convolution
    extra = [max(0, (o - 1) * ss + dd * (kk - 1) + 1 - n - 2 * pp) for o, n, kk, ss, pp, dd
             in zip(out, sides, k, s, p, d)]
    weight = torch.full((c, 1, *k), 1.0 / (k[0] * k[1]), dtype=x.dtype, device=x.device)
    return F.conv2d(F.pad(x, (0, extra[1], 0, extra[0])), weight, stride=s, padding=p, dilation=d, groups=c)


def _adaptive_mean(pool: nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    """An adaptive pool's forward, averaging; a global one's output carries no gradient (see the docstring)."""
    size = pool.output_size
    if all(v == 1 for v in ((size,) if isinstance(size, int) else size)):
        return lambda x: F.adaptive_avg_pool2d(x, 1).detach()
    return lambda x: F.adaptive_avg_pool2d(x, size)


def _box_conv(conv: nn.Conv2d | nn.ConvTranspose2d) -> Callable[..., torch.Tensor]:
    """The forward of ``conv`` with every weight ``1 / fan-in`` and no bias, computed as what it is on a positive
    copy, whose convolutions give every output channel the same values: the input's channels averaged, one box
    filter, the result copied to every output channel (far cheaper than the convolution). Groups are merged:
    the union of their fields is exact (a field is the input field widened by the window, for every group),
    and only an explicit slice of channels (a CSP or shuffle network's split) would see a field too wide."""
    cout, transposed = conv.out_channels, isinstance(conv, nn.ConvTranspose2d)
    k, s, d = _pair(conv.kernel_size), _pair(conv.stride), _pair(conv.dilation)
    pad = conv.padding if isinstance(conv.padding, str) else _pair(conv.padding)
    # a box filter is an average pool where the pool can take the padding (and mkldnn builds nothing per shape)
    pooled = (not transposed and d == (1, 1) and not isinstance(pad, str)
              and all(p <= kk // 2 for p, kk in zip(pad, k)))

    def forward(x: torch.Tensor, output_size: Any = None) -> torch.Tensor:
        if output_size is not None:  # a transposed convolution told its size: the convolution itself
            return type(conv).forward(conv, x, output_size)
        mean = x.mean(1, keepdim=True)
        if mean.requires_grad:  # binarised on one channel, not on all of them
            mean.register_hook(_support)
        kernel = torch.full((1, 1, *k), 1.0 / (k[0] * k[1]), dtype=x.dtype, device=x.device)
        if transposed:
            y = F.conv_transpose2d(mean, kernel, None, s, pad, _pair(conv.output_padding), 1, d)
        elif pooled:
            y = F.avg_pool2d(mean, k, s, pad, count_include_pad=True)
        else:
            y = F.conv2d(mean, kernel, None, s, pad, d)
        # a fresh tensor, not a view: a block's in-place sum (ResNet's `out += identity`) on a view makes autograd
        # rebuild it through slow strided copies
        return y.expand(y.shape[0], cout, *y.shape[-2:]).clone()

    return forward


def _constant(module: nn.Module, pname: str, p: torch.Tensor) -> nn.Parameter:
    """A positive copy's parameter: 1 / fan-in for a convolution's or linear layer's weight, 0 for a bias, else 1."""
    if pname == "weight" and isinstance(module, (*CONVS, nn.Linear)):
        value = 1.0 / max(1, p[0].numel())
    else:
        value = 0.0 if pname.endswith("bias") else 1.0
    return nn.Parameter(torch.full(p.shape, value), requires_grad=False)


def _support(grad: torch.Tensor) -> torch.Tensor:
    """1 wherever ``grad`` is not 0: the same support, without the exponential shrinking at a field's edges
    (1/k per k-tap layer) that would underflow in float32 in a deep network."""
    return (grad != 0).to(grad.dtype)


def _binarise(_module: nn.Module, _inp: Any, out: Any) -> None:
    out = tensor_of(out)
    if out is not None and out.requires_grad:
        out.register_hook(_support)


def positive_copy(net: nn.Module) -> nn.Module:
    """A float32 CPU copy of ``net`` in evaluation mode, linear and positive (see the module's docstring), whose
    gradients are binarised at every module's output (support only); its parameters need no gradient. ``net`` is
    not changed."""
    # the parameters are made, not copied: the weights are replaced anyway
    memo: dict[int, Any] = {id(p): _constant(m, n, p) for m in net.modules()
                            for n, p in m.named_parameters(recurse=False)}
    twin = copy.deepcopy(net, memo).float().cpu().eval()  # measured on the CPU, wherever ``net`` is
    for module in twin.modules():
        # instance-level forwards: a module shared by two parents (timm's trunks) changes in both
        if isinstance(module, ACTIVATIONS) or NORM.search(type(module).__name__) or GATE.search(type(module).__name__):
            object.__setattr__(module, "forward", _identity)
            continue
        if type(module) in (nn.Conv2d, nn.ConvTranspose2d) and module.padding_mode == "zeros":
            object.__setattr__(module, "forward", _box_conv(module))  # binarises its gradient itself
            continue
        if isinstance(module, nn.MaxPool2d):
            object.__setattr__(module, "forward", _window_mean(module))
        elif isinstance(module, (nn.AdaptiveMaxPool2d, nn.AdaptiveAvgPool2d)):
            object.__setattr__(module, "forward", _adaptive_mean(module))
        if isinstance(module, (*CONVS, nn.Upsample)) or "Pool" in type(module).__name__:
            module.register_forward_hook(_binarise)  # where weights below 1 spread the gradient thin
    twin.requires_grad_(False)
    return twin


def _split(target: str) -> tuple[str, int]:
    """'layer1' -> ('layer1', -1) (its last call); 'encoder.pool:2' -> ('encoder.pool', 2)."""
    name, _, call = target.partition(":")
    return name, int(call) if call else -1


def _outputs_of(twin: nn.Module, targets: list[str], x: torch.Tensor) -> dict[str, torch.Tensor | None]:
    """The output feature map of each target (a module name, optionally ':call') for the input ``x``, from one
    forward that stops once the last of them exists (where every target names its call)."""
    wanted = [_split(t) for t in targets]
    seen: dict[str, list[object]] = {name: [] for name, _ in wanted}
    last = {name: max(call for n, call in wanted if n == name) for name, _ in wanted}
    if any(call < 0 for _, call in wanted):
        last = {}  # a last call: the whole forward must run to know which is last
    done: set[str] = set()

    def hook_for(name: str) -> Callable[..., None]:
        def hook(_m: nn.Module, _inp: Any, out: Any) -> None:
            seen[name].append(out)
            if last and len(seen[name]) > last[name]:
                done.add(name)
                if len(done) == len(last):
                    raise _Reached(out)
        return hook

    handles = [twin.get_submodule(name).register_forward_hook(hook_for(name)) for name in seen]
    try:
        twin(x)
    except _Reached:
        pass
    finally:
        for h in handles:
            h.remove()
    found: dict[str, torch.Tensor | None] = {}
    for target, (name, call) in zip(targets, wanted):
        outs = seen[name]
        found[target] = tensor_of(outs[call]) if -len(outs) <= call < len(outs) else None
    return found


def _spans(twin: nn.Module, targets: list[str], shape: tuple[int, ...], axis: int,
           ) -> dict[str, tuple[int, bool]]:
    """(extent along ``axis`` (-2 rows, -1 columns), reaches the border) of the centre unit of each target's
    output for an input of ``shape``: one forward, one backward per target. Targets whose output has no spatial
    grid, or that no gradient from the input reaches, are left out."""
    x = torch.ones(shape, requires_grad=True)
    outs = _outputs_of(twin, targets, x)
    spans = {}
    for target, out in outs.items():
        if out is None or out.ndim != 4 or not out.requires_grad:
            continue
        h, w = out.shape[-2:]
        (grad,) = torch.autograd.grad(out[0, :, h // 2, w // 2].sum(), x, retain_graph=True, allow_unused=True)
        if grad is None or not bool(torch.isfinite(grad).all()):
            continue
        hit = (grad[0].abs().sum(0) > 0).any(-1 - axis % 2).nonzero().flatten()  # rows (axis -2) or columns
        if len(hit):
            spans[target] = (int(hit[-1] - hit[0]) + 1, bool(hit[0] == 0 or hit[-1] == shape[axis] - 1))
    return spans


def _strip_spans(twin: nn.Module, targets: list[str], shape: tuple[int, ...], axis: int,
                 ) -> dict[str, tuple[int, bool]]:
    """``_spans`` along ``axis`` on a strip of the input, ``NARROW`` pixels across the other axis: a field's
    extent along one axis does not depend on the other's, and a strip costs a fraction of the whole image.
    The whole input where the network cannot take the strip."""
    strip = list(shape)
    strip[-1 if axis == -2 else -2] = min(shape[-1 if axis == -2 else -2], NARROW)
    try:
        return _spans(twin, targets, tuple(strip), axis)
    except RuntimeError:  # a network of a fixed input size, or one that pools the strip to nothing
        if tuple(strip) == tuple(shape):
            raise
        return _spans(twin, targets, shape, axis)


def _square(net: nn.Module) -> bool:
    """Whether every window of ``net`` (kernels, strides, dilations) is square: its fields are then too."""
    for module in net.modules():
        for attr in ("kernel_size", "stride", "dilation"):
            value = getattr(module, attr, 1)
            if isinstance(value, tuple) and len(set(value)) > 1:
                return False
    return True


def receptive_fields(net: nn.Module, input_shape: tuple[int, ...], names: Iterable[str] | None = None,
                     ) -> ReceptiveFields:
    """The theoretical receptive field (input pixels on a side: the larger of its height and width) of the
    centre unit of each named module's output, for an input of ``input_shape`` (N, C, H, W); see the module's
    docstring.

    ``names``: module names of ``net.named_modules()`` ('' for ``net`` itself), each optionally ':k' for its
    k-th call (0-based; default its last); None: every convolution and pooling module. ``net`` must take
    images (N, C, H, W): for a detector give its trunk (``trunk_of(net).module``; ``trunk_stages``). Modules
    whose output has no spatial grid are left out; fields cut by the input's border are in ``.clipped``. Costs
    a forward on a strip of the input and a backward per name (twice where some window is not square).
    CnnkitError for a name ``net`` does not have.
    """
    if names is None:
        names = [n for n, m in net.named_modules() if isinstance(m, CONVS) or "Pool" in type(m).__name__]
    names = list(dict.fromkeys(names))
    modules = dict(net.named_modules())
    missing = [n for n in names if _split(n)[0] not in modules]
    if missing:
        raise CnnkitError(f"{missing[0]}: not a module of {type(net).__name__}; give a name as "
                          "`cnnkit summary` prints it")
    fields = ReceptiveFields()
    if not names:
        return fields
    twin = positive_copy(net)
    shape = (1, *tuple(input_shape)[1:])
    if _square(net):  # a field as tall as it is wide: measured across the input's shorter side, which clips first
        rows = cols = _strip_spans(twin, names, shape, -2 if shape[-2] <= shape[-1] else -1)
    else:
        rows, cols = _strip_spans(twin, names, shape, -2), _strip_spans(twin, names, shape, -1)
    for name in names:
        if name in rows and name in cols:
            fields[name] = max(rows[name][0], cols[name][0])
            if rows[name][1] or cols[name][1]:
                fields.clipped.add(name)
    return fields


def row_fields(net: nn.Module, input_shape: tuple[int, ...], rows: Sequence[tuple[str, str, tuple]],
               cap: int = 64) -> list[str]:
    """Receptive-field labels ('43', '>=224', '') for the rows of a layer table: ``rows`` are (module name, type
    name, output shape) per leaf call in call order (``cnnkit.models.summary.layer_table``'s). Measured for the
    convolutions and (non-adaptive) pools and for the last row of each stage of the trunk, on outputs with a
    spatial grid and one map per input image; at most ``cap`` rows, stages, pools and wider-than-1x1 convolutions
    first (a 1x1 convolution's field is its input's)."""
    calls: dict[str, int] = {}
    targets: dict[int, str] = {}
    for i, (name, _kind, _shape) in enumerate(rows):
        targets[i] = f"{name}:{calls.get(name, 0)}"
        calls[name] = calls.get(name, 0) + 1
    modules = dict(net.named_modules())
    # one map per image on a grid; a shape not known (a pool's (values, indices)) is tried
    spatial = [not s or (len(s) == 4 and s[0] == input_shape[0]) for _n, _k, s in rows]
    priority: dict[int, int] = {}
    for i, (name, kind, _shape) in enumerate(rows):
        module = modules.get(name)
        if isinstance(module, CONVS):
            priority[i] = 2 if max(_pair(module.kernel_size)) == 1 else 1
        elif "Pool" in kind and not kind.startswith("Adaptive"):
            priority[i] = 0
    for stage in _stages_or_none(net, input_shape):
        name, _, call = stage.name.partition(":")
        inside = [i for i, (n, _k, _s) in enumerate(rows) if (targets[i] == stage.name if call else
                                                               n == name or n.startswith(name + "."))]
        if inside:  # a stage's output is its last leaf's (a ResNet block's ReLU after the sum)
            priority[inside[-1]] = 0
    chosen = sorted((i for i in priority if spatial[i]), key=lambda i: (priority[i], i))[:cap]
    fields = receptive_fields(net, input_shape, [targets[i] for i in sorted(chosen)])
    return [fields.label(targets[i]) for i in range(len(rows))]


def _stages_or_none(net: nn.Module, input_shape: tuple[int, ...]) -> list[Stage]:
    """The trunk's stages, found on an input of at most ``PROBE`` pixels a side (the same stages, for less)."""
    probe = (1, input_shape[1], min(input_shape[-2], PROBE), min(input_shape[-1], PROBE))
    try:
        try:
            return trunk_stages(net, probe)
        except RuntimeError:  # a network of a fixed input size
            return trunk_stages(net, input_shape)
    except CnnkitError:  # a network without a trunk cnnkit knows: its convolutions and pools only
        return []

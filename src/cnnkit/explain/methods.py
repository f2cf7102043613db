"""Saliency maps of what a task asks to explain (``ExplainTargets``): Grad-CAM, Grad-CAM++ and Score-CAM
(pytorch-grad-cam) at a layer of the network, occlusion and integrated gradients (captum) on the pixels.

Every method sees the model only through ``targets.score`` (images -> one score per target), so that
classification, segmentation, detection and recognition are explained alike. The input is repeated once
per target and target ``t`` of copy ``t`` is explained: one map per target from one call.
"""

from __future__ import annotations

import difflib
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from cnnkit.errors import CnnkitError
from cnnkit.explain import METHODS
from cnnkit.models.trunk import trunk_of

if TYPE_CHECKING:
    from cnnkit.engine.task import ExplainTargets
    from cnnkit.models.wrapper import ImageModel

__all__ = ["METHODS", "check_method", "compute_maps", "default_layer", "find_layer", "scaled"]

LAYER_METHODS = ("gradcam", "gradcam++", "scorecam")  # the others work on the input pixels, at no layer
SCORECAM_BATCH = 8  # masked images per forward pass: Score-CAM runs one per channel of the layer, per target
OCCLUSION_PER_EVAL = 64  # occluded images per forward pass (all targets together)
IG_STEPS = 32  # points on the path from the black image to the image
IG_BATCH = 32  # of those, per forward pass (all targets together)
PROBE_SIDES = (224, 448)  # px: the probe that finds the default layer without a working size (larger if it fails)
MIN_CAM_SIDE = 7  # px: the shorter side of the smallest map the default layer gives (a ResNet's layer4 at 224 px)

# one explanation at a time per process: the model's training flags and its parameters' requires_grad are
# switched for the duration, which concurrent explanations (the server's worker pool) must not interleave
_LOCK = threading.RLock()


def check_method(method: str) -> None:
    """CnnkitError unless ``method`` is one of METHODS."""
    if method not in METHODS:
        close = difflib.get_close_matches(method, METHODS, n=1, cutoff=0.4)
        hint = f" (did you mean {close[0]}?)" if close else ""
        raise CnnkitError(f"method {method!r}: not an explanation method{hint}; pick one of {', '.join(METHODS)}")


def find_layer(net: nn.Module, name: str, model_name: str = "") -> nn.Module:
    """The module of ``net`` named ``name`` (a name of ``net.named_modules()``, as ``cnnkit summary`` prints it);
    CnnkitError with the closest names otherwise."""
    modules = dict(net.named_modules())
    if name and name in modules:
        return modules[name]
    model_name = model_name or type(net).__name__
    close = difflib.get_close_matches(name, [n for n in modules if n], n=3, cutoff=0.5)
    hint = f" (did you mean {' or '.join(close)}?)" if close else ""
    raise CnnkitError(f"--layer {name}: not a layer of {model_name}{hint}; give a name as `cnnkit summary "
                      f"{model_name}` prints it, or drop --layer for the last stage of the encoder")


def default_layer(net: nn.Module, size: int | tuple[int, int] | None = None) -> str:
    """The name (in ``net.named_modules()``) of the layer the CAM methods look at by default: the last stage
    of ``net``'s trunk (``cnnkit.models.trunk.trunk_of``) whose map is at least MIN_CAM_SIDE (7) px on its
    shorter side at an input of ``size`` px (``(h, w)`` or a square side; give the real working size: the
    map shrinks with the image), else the stage with the largest map. 7 px is Grad-CAM's own setting (a
    ResNet's last stage at 224 px): a map of 1x1 is one number, constant, and its Grad-CAM is all zero.

    A stage is, per resolution of the trunk, the last module (in the order their forward passes end) whose
    output is a 4-D map at that resolution from an input at most twice as large and that does not sit inside
    a module of another resolution: ``layer3``/``layer4`` of a ResNet, a block of a ``features`` sequence.
    A network without a trunk cnnkit knows: every module with a 4-D output counts as a stage. ``size`` None:
    a probe of PROBE_SIDES (224 px, a larger one if it fails). Found by one zero image through the network;
    CnnkitError if nothing fits."""
    try:
        root, whole = trunk_of(net).module, False
    except CnnkitError:
        root, whole = net, True
    names = {id(m): n for n, m in net.named_modules() if n}
    if size is None:
        sides = [(side, side) for side in PROBE_SIDES]
    else:
        sides = [(size, size)] if isinstance(size, int) else [(int(size[0]), int(size[1]))]
    runs = _probe(net, root, names, sides)
    maps = [r for r in runs if r["shape"] is not None]
    stages = maps if whole else _stages(runs)
    if not stages:
        raise CnnkitError(f"{type(net).__name__}: no layer with a 2-D feature map found; give --layer (names as "
                          "`cnnkit summary MODEL` prints them)")
    wide = [r for r in stages if min(r["shape"][-2:]) >= MIN_CAM_SIDE]
    if wide:
        return wide[-1]["name"]
    largest = max(r["shape"][-2] * r["shape"][-1] for r in stages)
    return [r for r in stages if r["shape"][-2] * r["shape"][-1] == largest][-1]["name"]


def _stages(runs: list[dict]) -> list[dict]:
    """The trunk's stages among the probe's ``runs`` (see ``default_layer``), in the order they end."""
    def one_step(r: dict) -> bool:  # a map from an input at most twice as large: a stage, not a run of them
        fh, fw = r["shape"][-2:]
        return r["in_shape"] is None or (r["in_shape"][-2] <= 2 * fh + 1 and r["in_shape"][-1] <= 2 * fw + 1)

    sides: dict[str, set] = {}  # per module, the resolutions of its one-step maps (a shared one may run twice)
    for r in runs:
        if r["shape"] is not None and one_step(r):
            sides.setdefault(r["name"], set()).add(tuple(r["shape"][-2:]))
    last: dict[tuple, int] = {}
    for i, r in enumerate(runs):
        if r["shape"] is None or r["took_input"] or not one_step(r):
            continue
        parts, side = r["name"].split("."), tuple(r["shape"][-2:])
        ancestors = (".".join(parts[:k]) for k in range(1, len(parts)))
        # inside a stage of another resolution: the start of the next stage (a stride-1 convolution before
        # the one that halves), or a block's inner convolution before its pooling
        if any(sides.get(a, {side}) - {side} for a in ancestors):
            continue
        last[side] = i
    return [runs[i] for i in sorted(last.values())]


def _first_conv_channels(module: nn.Module) -> int:
    conv = next((m for m in module.modules() if isinstance(m, nn.Conv2d)), None)
    if conv is None:
        raise CnnkitError(f"{type(module).__name__}: no convolution found; give --layer (names as `cnnkit summary "
                          "MODEL` prints them)")
    return int(conv.in_channels)


def _probe(net: nn.Module, root: nn.Module, names: dict[int, str], sides: list[tuple[int, int]]) -> list[dict]:
    """Run one zero image of each size of ``sides`` in turn (the next where one fails) through ``net`` (so
    that a detector resizes it as it would an image), else through ``root`` alone; per named module below
    ``root``, in the order their forward passes end: its name, its output's shape (4-D tensors, else None),
    its input's shape and whether it took ``root``'s input."""
    runs: list[dict] = []
    given: list[Any] = []

    def enter(module: nn.Module, inputs: Any) -> None:
        given.append(inputs[0] if isinstance(inputs, tuple) and inputs else None)

    def record(module: nn.Module, inputs: Any, output: Any) -> None:
        first = inputs[0] if isinstance(inputs, tuple) and inputs else None
        four_d = isinstance(output, torch.Tensor) and output.ndim == 4
        runs.append({"name": names[id(module)], "shape": tuple(output.shape) if four_d else None,
                     "in_shape": tuple(first.shape) if isinstance(first, torch.Tensor) and first.ndim == 4 else None,
                     "took_input": first is not None and any(first is g for g in given)})

    handles = [m.register_forward_hook(record) for m in root.modules() if m is not root and id(m) in names]
    handles.append(root.register_forward_pre_hook(enter))
    channels = _first_conv_channels(root)
    error: Exception | None = None
    try:
        with _kept_state(net), torch.no_grad():
            for h, w in sides:
                for module in (net, root) if net is not root else (net,):
                    runs.clear()
                    given.clear()
                    try:
                        module(torch.zeros(1, channels, h, w, device=_device(root)))
                    except Exception as e:  # noqa: BLE001 - too small for some network: a larger probe next
                        error = e
                        continue
                    if runs:
                        return list(runs)
    finally:
        for handle in handles:
            handle.remove()
    raise CnnkitError(f"{type(root).__name__}: a probe image did not run through the network ({error}); give "
                      "--layer (names as `cnnkit summary MODEL` prints them)")


def _device(module: nn.Module) -> torch.device:
    param = next(module.parameters(), None)
    return param.device if param is not None else torch.device("cpu")


@contextmanager
def _kept_state(model: nn.Module) -> Iterator[None]:
    """``model`` in evaluation with its parameters out of autograd (gradients reach the input and the layers'
    outputs, never ``.grad`` of a weight); every module's training flag and every parameter's requires_grad
    put back afterwards."""
    with _LOCK:
        training = {m: m.training for m in model.modules()}
        wants = {p: p.requires_grad for p in model.parameters()}
        model.eval()
        for p in wants:
            p.requires_grad_(False)
        try:
            yield
        finally:
            for m, flag in training.items():
                m.training = flag
            for p, flag in wants.items():
                p.requires_grad_(flag)


class _Scorer(nn.Module):
    """The model as the libraries take it: images ``(B, C, h, w)`` float 0..1 -> scores ``(B, T)``."""

    def __init__(self, model: nn.Module, score: Callable[[torch.Tensor], torch.Tensor]):
        super().__init__()
        self.model = model  # a child, so that the libraries find the device among its parameters
        self.score_fn = score

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if torch.is_grad_enabled() and not x.requires_grad:  # weights are out of autograd: the input carries it
            x = x.detach().requires_grad_(True)
        return self.score_fn(x)


def compute_maps(model: ImageModel, targets: ExplainTargets, method: str = "gradcam", layer: str = "") -> np.ndarray:
    """Maps ``(T, h, w)`` float32 in [0, 1] at the size of ``targets.inputs``: one per target, each min-max
    scaled on its own (a constant map is all 0).

    ``method``: one of METHODS. gradcam, gradcam++ and scorecam work at ``layer`` (a name of
    ``model.net.named_modules()``; "" = ``default_layer``); occlusion (windows of 1/8 of each side, moved by
    half a window, black) and ig (integrated gradients from a black image, |attribution| summed over channels)
    work on the pixels and ignore ``layer``. Score-CAM runs the model once per channel of the layer and target
    (a ResNet-18's layer4: 512 passes per target, tens of seconds on a CPU). The model's weights, training
    flags and hooks are as they were afterwards. CnnkitError for an unknown method or layer.
    """
    check_method(method)
    count = len(targets.labels)
    h, w = targets.inputs.shape[-2:]
    if count == 0:
        return np.zeros((0, h, w), np.float32)
    batch = targets.inputs.detach().float().to(_device(model)).expand(count, -1, -1, -1).contiguous()
    scorer = _Scorer(model, targets.score)
    with _kept_state(model), torch.enable_grad():
        if method in LAYER_METHODS:
            name = layer or default_layer(model.net, (h, w))
            raw = _cam(scorer, batch, method, find_layer(model.net, name, model.meta.model), name)
        elif method == "occlusion":
            raw = _occlusion(scorer, batch)
        else:
            raw = _integrated_gradients(scorer, batch)
    return scaled(raw)


def scaled(raw: np.ndarray) -> np.ndarray:
    """Each map of ``(T, h, w)`` min-max scaled to [0, 1] float32; non-finite values count as 0, a constant
    map (within float noise) is all 0."""
    raw = np.nan_to_num(np.asarray(raw, np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    out = np.zeros(raw.shape, np.float32)
    for i, m in enumerate(raw):
        low, span = m.min(), m.max() - m.min()
        if span > 1e-7 * max(abs(m).max(), 1e-30):
            out[i] = (m - low) / span
    return out


def _check_layer(scorer: _Scorer, batch: torch.Tensor, module: nn.Module, name: str) -> None:
    """The layer runs when the targets are scored, and gives a 4-D map (the CAMs' input)."""
    seen: list[Any] = []
    handle = module.register_forward_hook(lambda m, i, o: seen.append(o))
    try:
        with torch.no_grad():
            scorer(batch[:1])
    finally:
        handle.remove()
    model = scorer.model.meta.model if hasattr(scorer.model, "meta") else "MODEL"
    if not seen:
        raise CnnkitError(f"--layer {name}: this layer does not run when the model scores the image; pick a layer "
                          f"of the encoder (`cnnkit summary {model}` lists them), or drop --layer")
    out = seen[0]
    if not (isinstance(out, torch.Tensor) and out.ndim == 4):
        what = f"a {out.ndim}-D tensor" if isinstance(out, torch.Tensor) else f"a {type(out).__name__}"
        raise CnnkitError(f"--layer {name}: its output is {what}, not a feature map (N, C, H, W); pick a "
                          f"convolutional layer (`cnnkit summary {model}` lists them), or drop --layer")
    if tuple(out.shape[-2:]) == (1, 1):  # one number per channel: its Grad-CAM is constant, all zero
        h, w = batch.shape[-2:]
        try:
            hint = f" such as {default_layer(scorer.model.net, (int(h), int(w)))} (the default at this size)"
        except (CnnkitError, AttributeError):
            hint = f" (`cnnkit summary {model}` lists them)"
        raise CnnkitError(f"--layer {name}: its map is 1x1 at this input ({w}x{h} px), one number per channel, "
                          f"so its map is flat; pick an earlier stage{hint}, or drop --layer")


def _cam(scorer: _Scorer, batch: torch.Tensor, method: str, module: nn.Module, name: str) -> np.ndarray:
    from pytorch_grad_cam import GradCAM, GradCAMPlusPlus, ScoreCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    _check_layer(scorer, batch, module, name)
    kind = {"gradcam": GradCAM, "gradcam++": GradCAMPlusPlus, "scorecam": ScoreCAM}[method]
    cam = kind(model=scorer, target_layers=[module])
    if method == "scorecam":
        cam.batch_size = SCORECAM_BATCH
    try:  # not `with cam`: its __exit__ swallows IndexError
        with _scorecam_bars():
            return cam(input_tensor=batch, targets=[ClassifierOutputTarget(t) for t in range(len(batch))])
    finally:
        cam.activations_and_grads.release()  # the hooks go: the model predicts as before


@contextmanager
def _scorecam_bars() -> Iterator[None]:
    """Score-CAM's own tqdm bars (one per target, always drawn) as cnnkit's: off with --quiet or without a
    terminal. Only that module's name is swapped, under the lock that serialises explanations."""
    from types import SimpleNamespace

    from pytorch_grad_cam import score_cam

    from cnnkit.progress import progress_bar

    own = score_cam.tqdm
    score_cam.tqdm = SimpleNamespace(tqdm=lambda steps: progress_bar(steps, desc="scorecam", unit="batch"))
    try:
        yield
    finally:
        score_cam.tqdm = own


def _occlusion(scorer: _Scorer, batch: torch.Tensor) -> np.ndarray:
    from captum.attr import Occlusion

    count, channels, h, w = batch.shape
    window = (channels, max(1, round(h / 8)), max(1, round(w / 8)))
    strides = (channels, max(1, window[1] // 2), max(1, window[2] // 2))
    with torch.no_grad():
        attr = Occlusion(scorer).attribute(batch, sliding_window_shapes=window, strides=strides, baselines=0.0,
                                           target=list(range(count)),
                                           perturbations_per_eval=max(1, OCCLUSION_PER_EVAL // count))
    return attr.sum(1).detach().float().cpu().numpy()  # the score's drop when a patch is blacked out


def _integrated_gradients(scorer: _Scorer, batch: torch.Tensor) -> np.ndarray:
    from captum.attr import IntegratedGradients

    attr = IntegratedGradients(scorer).attribute(batch, baselines=torch.zeros_like(batch),
                                                 target=list(range(len(batch))), n_steps=IG_STEPS,
                                                 internal_batch_size=IG_BATCH)
    return attr.abs().sum(1).detach().float().cpu().numpy()

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
PROBE_SIDES = (128, 224)  # px: the probe image that finds the default layer (a larger one if the first fails)

# one explanation at a time per process: the model's training flags and its parameters' requires_grad are
# switched for the duration, which concurrent explanations (the server's worker pool) must not interleave
_LOCK = threading.RLock()


def check_method(method: str) -> None:
    """CnnkitError unless ``method`` is one of METHODS."""
    if method not in METHODS:
        close = difflib.get_close_matches(method, METHODS, n=1, cutoff=0.4)
        hint = f" (did you mean {close[0]}?)" if close else ""
        raise CnnkitError(f"--method {method}: not an explanation method{hint}; pick one of {', '.join(METHODS)}")


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


def default_layer(net: nn.Module) -> str:
    """The name (in ``net.named_modules()``) of the last convolutional stage of ``net``'s trunk
    (``cnnkit.models.trunk.trunk_of``): the last module, in the order their forward passes end, under the
    trunk whose output is a 4-D map at the trunk's final resolution and whose input is at most twice that
    (a stage, not the sequence of all stages): ``layer4`` of a ResNet, the last block of a ``features``
    sequence; where no module gives that map (a pooling that also returns indices), the last that gives a 4-D
    map. A network without a trunk cnnkit knows: the last module with a 4-D output (larger than 1x1
    where there is one). Found by one probe image through the network; CnnkitError if nothing fits."""
    try:
        root, whole = trunk_of(net).module, False
    except CnnkitError:
        root, whole = net, True
    names = {id(m): n for n, m in net.named_modules() if n}
    runs, out = _probe(root, names)
    maps = [r for r in runs if r["shape"] is not None]
    if whole:
        wide = [r for r in maps if r["shape"][-2] * r["shape"][-1] > 1]
        chosen = (wide or maps)[-1:]
    else:
        fh, fw = out.shape[-2:] if isinstance(out, torch.Tensor) and out.ndim == 4 else maps[-1]["shape"][-2:]
        inner = [r for r in maps if not r["took_input"]]
        chosen = [r for r in inner if tuple(r["shape"][-2:]) == (fh, fw)
                  and (r["in_shape"] is None or (r["in_shape"][-2] <= 2 * fh + 1 and r["in_shape"][-1] <= 2 * fw + 1))]
        chosen = chosen or inner  # the last pooling gives no map of its own (indices too): the last stage before it
    if not chosen:
        raise CnnkitError(f"{type(net).__name__}: no layer with a 2-D feature map found; give --layer (names as "
                          "`cnnkit summary MODEL` prints them)")
    return chosen[-1]["name"]


def _first_conv_channels(module: nn.Module) -> int:
    conv = next((m for m in module.modules() if isinstance(m, nn.Conv2d)), None)
    if conv is None:
        raise CnnkitError(f"{type(module).__name__}: no convolution found; give --layer (names as `cnnkit summary "
                          "MODEL` prints them)")
    return int(conv.in_channels)


def _probe(root: nn.Module, names: dict[int, str]) -> tuple[list[dict], Any]:
    """Run one blank image through ``root``; per named module below it, in the order their forward passes end:
    its name, its output's shape (4-D tensors, else None), its input's shape and whether it took the probe."""
    runs: list[dict] = []
    probe: list[torch.Tensor] = []

    def record(module: nn.Module, inputs: Any, output: Any) -> None:
        first = inputs[0] if isinstance(inputs, tuple) and inputs else None
        four_d = isinstance(output, torch.Tensor) and output.ndim == 4
        runs.append({"name": names[id(module)], "shape": tuple(output.shape) if four_d else None,
                     "in_shape": tuple(first.shape) if isinstance(first, torch.Tensor) and first.ndim == 4 else None,
                     "took_input": first is probe[0]})

    handles = [m.register_forward_hook(record) for m in root.modules() if m is not root and id(m) in names]
    channels = _first_conv_channels(root)
    error: Exception | None = None
    try:
        with _kept_state(root), torch.no_grad():
            for side in PROBE_SIDES:
                runs.clear()
                probe[:] = [torch.zeros(1, channels, side, side, device=_device(root))]
                try:
                    return runs, root(probe[0])
                except Exception as e:  # noqa: BLE001 - too small for some network: a larger probe next
                    error = e
    finally:
        for h in handles:
            h.remove()
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
            name = layer or default_layer(model.net)
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

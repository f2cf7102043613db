"""torchvision backbones (ResNet, MobileNetV3, EfficientNet) for any number of input channels.

``pretrained`` is '' (random init), a local weights file (a state dict, as torchvision saves it),
or 'torchvision' to fetch torchvision's ImageNet weights (needs network; fails fast offline).
"""

from __future__ import annotations

import socket
from pathlib import Path

import torch
import torchvision
from torch import nn

from cnnkit.errors import CnnkitError
from cnnkit.models.registry import register_model

DOWNLOAD_TIMEOUT_S = 15.0


def _first_conv(model: nn.Module) -> tuple[nn.Module, str]:
    for name, module in model.named_modules():
        if isinstance(module, nn.Conv2d):
            return module, name
    raise ValueError("model has no Conv2d")


def _set_module(model: nn.Module, dotted: str, new: nn.Module) -> None:
    parent_name, _, child = dotted.rpartition(".")
    setattr(model.get_submodule(parent_name) if parent_name else model, child, new)


def adapt_in_chans(weight: torch.Tensor, in_chans: int) -> torch.Tensor:
    """Map RGB filters ``(O, 3, k, k)`` to ``in_chans`` channels (as timm does).

    One channel takes the sum over RGB; more channels tile RGB and rescale by 3/in_chans. The
    response to grey input is kept exactly for 1 channel and multiples of 3, roughly otherwise.
    """
    if weight.shape[1] == in_chans:
        return weight
    if in_chans == 1:
        return weight.sum(1, keepdim=True)
    reps = -(-in_chans // weight.shape[1])
    return weight.repeat(1, reps, 1, 1)[:, :in_chans] * (weight.shape[1] / in_chans)


def load_weights(source: str, arch: str) -> dict[str, torch.Tensor]:
    """A state dict from a local file (a bare state dict, or a checkpoint dict holding one under 'model'), or
    torchvision's own weights of ``arch`` with 'torchvision' (a download: fails fast offline)."""
    if source == "torchvision":
        weights = torchvision.models.get_model_weights(arch).DEFAULT
        old = socket.getdefaulttimeout()
        socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_S)  # never hang on a closed network
        try:
            return weights.get_state_dict(progress=False)
        except Exception as e:  # noqa: BLE001 - any network failure means the same to the user
            raise CnnkitError(
                f"could not download torchvision weights for {arch} ({type(e).__name__}: {e}); "
                f"offline? Download {weights.url} elsewhere and pass the file to --pretrained"
            ) from None
        finally:
            socket.setdefaulttimeout(old)
    path = Path(source)
    if not path.is_file():
        raise CnnkitError(f"{path}: pretrained weights file not found; pass a .pth state dict or 'torchvision'")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001
        raise CnnkitError(f"{path}: not a weights file torch can read ({type(e).__name__}); pass a .pth state dict "
                          "as torchvision saves it") from None
    if isinstance(state, dict) and "model" in state and isinstance(state["model"], dict):
        state = state["model"]
    return state


def build_torchvision(arch: str, num_classes: int, in_chans: int, pretrained: str = "", **kw) -> nn.Module:
    """Build ``torchvision.models.<arch>`` with ``num_classes`` outputs and ``in_chans`` inputs."""
    model = torchvision.models.get_model(arch, weights=None, num_classes=num_classes, **kw)
    conv, conv_name = _first_conv(model)
    if in_chans != conv.in_channels:
        new = nn.Conv2d(in_chans, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
                        conv.dilation, conv.groups, conv.bias is not None)
        _set_module(model, conv_name, new)
    if pretrained:
        state = load_weights(pretrained, arch)
        own = model.state_dict()
        w_key = f"{conv_name}.weight"
        if w_key in state:
            state[w_key] = adapt_in_chans(state[w_key], in_chans)
        # The classifier's shape differs when num_classes does: keep ours, take everything else.
        kept = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
        if len(kept) < len(own) // 2:
            raise CnnkitError(f"{pretrained}: weights do not match {arch} ({len(kept)}/{len(own)} tensors fit)")
        model.load_state_dict(kept, strict=False)
    return model


def _register(arch: str, doc: str) -> None:
    def builder(num_classes: int = 1000, in_chans: int = 3, pretrained: str = "", **kw) -> nn.Module:
        return build_torchvision(arch, num_classes, in_chans, pretrained, **kw)

    builder.__doc__ = doc
    register_model(arch)(builder)


for _arch, _doc in [
    ("resnet18", "torchvision ResNet-18 (11.7M params at 1000 classes)."),
    ("resnet34", "torchvision ResNet-34."),
    ("resnet50", "torchvision ResNet-50 (bottleneck blocks)."),
    ("mobilenet_v3_small", "torchvision MobileNetV3-Small: depthwise convs, squeeze-excite, hard-swish."),
    ("mobilenet_v3_large", "torchvision MobileNetV3-Large."),
    ("efficientnet_b0", "torchvision EfficientNet-B0: MBConv blocks, compound scaling."),
]:
    _register(_arch, _doc)

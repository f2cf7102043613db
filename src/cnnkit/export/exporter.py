"""``cnnkit export``: a checkpoint -> an ONNX or TorchScript file that takes uint8 images.

ONNX goes through torch's TorchScript-based exporter (``dynamo=False``), the path torchvision's
detection models are written and tested for (their post-processing has data-dependent shapes).
"""

from __future__ import annotations

import io
import json
import tempfile
import warnings
from pathlib import Path
from typing import Any

import torch

from cnnkit import __version__
from cnnkit.errors import CnnkitError, require
from cnnkit.files import atomic_write_bytes
from cnnkit.log import LOGGER
from cnnkit.meta import default_colours

FORMATS = {"onnx": ".onnx", "torchscript": ".torchscript"}
OPSET = 17  # ONNX operator set: onnxruntime >= 1.14 runs it; torchvision's RoIAlign needs >= 16


def input_side(model: Any, imgsz: int) -> int:
    """The exported input's side (pixels): ``imgsz``, else the training size (classify) or crop."""
    return imgsz or model.meta.input_side


def export_metadata(model: Any, graph: torch.nn.Module, shape: list, fmt: str, half: bool,
                    source: str) -> dict[str, str]:
    """String key -> value pairs stored in the file: what a runtime needs without cnnkit's checkpoint."""
    stamp = getattr(model.task, "export_card", None)  # a task may add what it knows of the weights (a fingerprint)
    card = stamp(model) if stamp is not None else model.meta
    if not card.colours:
        card = card.replace(colours=tuple(map(tuple, default_colours(card.num_classes))))
    values = card.replace(extra={k: v for k, v in card.extra.items() if k != "class_weights"}).to_dict()
    export = {"format": fmt, "input": {"name": "images", "dtype": "uint8", "layout": "NCHW", "shape": shape},
              "outputs": list(graph.outputs), "half": half, "source": source, "cnnkit_version": __version__}
    return {"task": card.task, "classes": json.dumps(values["classes"]), "colours": json.dumps(values["colours"]),
            "input_size": json.dumps(shape[2:]), "cnnkit_version": __version__,
            "cnnkit_meta": json.dumps(values), "cnnkit_export": json.dumps(export),
            "cnnkit_config": json.dumps(model.checkpoint.get("config", {}))}


def build_graph(model: Any, half: bool, weights: str | Path = "the checkpoint") -> torch.nn.Module:
    """The task's export graph around a loaded checkpoint's module (read from ``weights``)."""
    if model.task.graph is None:
        hint = getattr(model.task, "export_hint", "") or "use the checkpoint"  # the task may say what to do instead
        raise CnnkitError(f"{weights}: a {model.meta.task} model has no export graph and cannot be exported; "
                          f"{hint}")
    return model.task.graph(model.module, half).eval()


def refuse_diverged(model: Any, side: int) -> None:
    """One forward pass on an example image before export: a checkpoint whose network computes NaN (its
    hooks raise CnnkitError) is refused here, not written as a file that predicts 'circle (nan)'."""
    with torch.no_grad():
        model(example_input(model.meta.in_chans, min(side, 256)))


def example_input(channels: int, side: int, batch: int = 1, seed: int = 0) -> torch.Tensor:
    """Random uint8 images ``(batch, channels, side, side)``, the same for the same seed."""
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (batch, channels, side, side), generator=g, dtype=torch.uint8)


def input_shape(graph: torch.nn.Module, channels: int, side: int, dynamic: bool) -> list:
    """The input's shape with names for free axes."""
    batch = "batch" if dynamic and graph.batch_dynamic else 1
    free = graph.free_size == "always" or (dynamic and graph.free_size == "dynamic")
    return [batch, channels, "height" if free else side, "width" if free else side]


def out_path(out: str | Path, fmt: str) -> Path:
    """``--out`` with the format's suffix added where loading could not tell the format from it: an ONNX
    file without .onnx, or a TorchScript file without a suffix or named .onnx (``exp1`` -> ``exp1.onnx``:
    a file named ``exp1`` was read as a checkpoint and failed to unpickle). Said in one line."""
    path, suffix = Path(out), FORMATS[fmt]
    given = path.suffix.lower()
    if given == suffix or (fmt != "onnx" and given not in ("", *FORMATS.values())) or path.is_dir():
        return path  # a folder is refused as it is, when written
    fixed = path.with_name(path.name + suffix)
    LOGGER.info("--out %s: writing %s (cnnkit tells a %s file by its %s suffix)", out, fixed, fmt, suffix)
    return fixed


def export_model(model: Any, weights: str | Path, fmt: str = "onnx", imgsz: int = 0, dynamic: bool = False,
                 half: bool = False, out: str | Path = "") -> tuple[Path, dict[str, str]]:
    """Write ``model`` (a loaded checkpoint, ``cnnkit.api.Model``, read from ``weights``) as ``fmt`` beside
    ``weights`` (or to ``out``); returns the file and the metadata stored in it. ``cnnkit.api.export``
    loads and calls this."""
    if fmt not in FORMATS:
        raise CnnkitError(f"--format {fmt}: choose one of {', '.join(FORMATS)}")
    side = input_side(model, imgsz)
    refuse_diverged(model, side)  # before build_graph, which may turn the weights to float16
    graph = build_graph(model, half, weights)
    shape = input_shape(graph, model.meta.in_chans, side, dynamic)
    path = out_path(out, fmt) if out else Path(weights).with_suffix(FORMATS[fmt])
    if path.exists() and path.resolve() == Path(weights).resolve():
        raise CnnkitError(f"--out {out}: is the checkpoint being exported; give another file (default: "
                          f"{Path(weights).with_suffix(FORMATS[fmt]).name} beside it)")
    metadata = export_metadata(model, graph, shape, fmt, half, Path(weights).name)
    try:
        example = example_input(model.meta.in_chans, side)
    except (RuntimeError, MemoryError):  # --imgsz 100000: 30 GB for the example image alone
        raise CnnkitError(f"--imgsz {side}: too large to export (the example image alone does not fit in memory); "
                          "give a smaller --imgsz, or --dynamic for any size at prediction") from None
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # tracer warnings about Python values: the parity check is the test
        try:
            data = (_onnx_bytes(graph, example, shape, metadata) if fmt == "onnx"
                    else _torchscript_bytes(graph, example, metadata))
        except CnnkitError:
            raise
        except Exception as e:  # noqa: BLE001 - any exporter failure: one line naming the model
            raise CnnkitError(f"{weights}: {model.meta.model} did not export to {fmt} "
                              f"({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})") from e
    atomic_write_bytes(path, data)
    return path, metadata


def _onnx_bytes(graph: torch.nn.Module, example: torch.Tensor, shape: list, metadata: dict[str, str]) -> bytes:
    require("onnx", "export", "exporting to ONNX")
    import onnx

    axes = {i: name for i, name in enumerate(shape) if isinstance(name, str)}
    dynamic_axes: dict[str, Any] = {"images": axes} if axes else {}
    for name in graph.outputs:  # outputs' free axes: the batch (or object count) and, for masks, the size
        dynamic_axes[name] = {0: "objects" if not graph.batch_dynamic else "batch"}
        if name == "mask" and "height" in shape:
            dynamic_axes[name].update({1: "height", 2: "width"})
    with tempfile.TemporaryDirectory() as tmp:
        file = Path(tmp) / "model.onnx"
        torch.onnx.export(graph, (example,), str(file), dynamo=False, opset_version=OPSET, input_names=["images"],
                          output_names=list(graph.outputs), dynamic_axes=dynamic_axes)
        proto = onnx.load(str(file))
    for key, value in metadata.items():
        prop = proto.metadata_props.add()
        prop.key, prop.value = key, value
    proto.producer_name, proto.producer_version = "cnnkit", metadata["cnnkit_version"]
    return proto.SerializeToString()


def _torchscript_bytes(graph: torch.nn.Module, example: torch.Tensor, metadata: dict[str, str]) -> bytes:
    traced = torch.jit.trace(graph, example, check_trace=False)
    buffer = io.BytesIO()
    torch.jit.save(traced, buffer, _extra_files={"cnnkit.json": json.dumps(metadata)})
    return buffer.getvalue()

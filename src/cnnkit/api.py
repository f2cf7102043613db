"""The Python API, mirroring the CLI: ``train``, ``load``, ``export`` and ``Model.predict``.

Names are resolved here, at the edge: ``train_with`` finds the task in the registry and hands the
task object to the engine (``fit(cfg, task)``), which imports no task. Torch is imported on first
use, so that ``load("model.onnx")`` runs on onnxruntime without it.
"""

from __future__ import annotations

import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias

import numpy as np
from PIL import Image

from cnnkit.config import TrainConfig, load_yaml, make_config
from cnnkit.data.images import as_pil, iter_sources  # noqa: F401 - iter_sources is part of the API
from cnnkit.errors import CnnkitError
from cnnkit.export.runtime import OnnxModel, TaskParts, TorchScriptModel
from cnnkit.meta import ModelMeta
from cnnkit.options import make_options, runtime_options
from cnnkit.predictor import Predictor, View
from cnnkit.results import Result, as_results
from cnnkit.tasks import get_runner_class, get_spec, get_task, get_view, task_names
from cnnkit.validate import ValResult

if TYPE_CHECKING:
    import numpy as np
    import torch

    from cnnkit.engine.task import Task
    from cnnkit.engine.trainer import TrainResult
    from cnnkit.models.wrapper import ImageModel

    ImageLike: TypeAlias = str | Path | Image.Image | np.ndarray | torch.Tensor


def train(config: str | Path | None = None, **overrides: Any) -> TrainResult:
    """Train from a recipe file and/or keyword overrides of :class:`TrainConfig` fields and the task's own
    training options (``cnnkit train <task> --help`` lists both; another task's option is refused by name).

    >>> cnnkit.train(task="classify", data="shapes", model="fastnet_small", epochs=3)
    """
    values = load_yaml(config, task=str(overrides.get("task", ""))) if config else {}
    values.update(overrides)
    if values.get("resume") and "epochs" not in values:
        values["epochs"] = 0  # a resumed run keeps its own number of epochs
    return train_with(make_config(with_task_defaults(values)))


def with_task_defaults(values: dict[str, Any]) -> dict[str, Any]:
    """``values`` with the task's own defaults of common fields (its model, and pretraining's optimiser) for those
    not given; a resumed run keeps its own."""
    from cnnkit.config import config_fields

    spec = get_spec(str(values.get("task") or task_names()[0]))
    if values.get("resume"):
        return values
    fields = {f.name for f in config_fields()}
    given = {k.replace("-", "_") for k in values}
    return {**{k: v for k, v in spec.defaults.items() if k in fields and k not in given}, **values}


def train_with(cfg: TrainConfig, on_epoch_end: Callable[[int, dict], None] | None = None) -> TrainResult:
    """Train a resolved config (``make_config`` has checked its options against its task): its task found by
    name, its model checked before any data is read (a resumed run takes its model from its own config, checked
    when it started)."""
    from cnnkit.data.images import set_max_pixels
    from cnnkit.engine.trainer import fit

    task = get_task(cfg.task)
    if not cfg.resume:
        check_model(cfg, task.name)
    set_max_pixels(cfg.max_pixels)
    return fit(cfg, task, on_epoch_end)


def check_model(cfg: TrainConfig, task: str) -> None:
    """``cfg.model`` is a model of ``task``, and ``--pretrained`` fits it; else CnnkitError in one line."""
    from cnnkit.models import accepts, get_entry, list_models
    from cnnkit.models.trunk import read_cnnkit_checkpoint

    entry = get_entry(cfg.model)
    if entry.task == "pretrain":
        raise CnnkitError(f"--model {cfg.model}: a pretraining network, not a model to train; give the model whose "
                          "encoder to train (`cnnkit train pretrain --model resnet18`)")
    if entry.task != task and not get_spec(task).args.get("any_model"):
        some = ", ".join(list_models(task)[:4])
        article = "an" if task[:1] in "aeiou" else "a"
        raise CnnkitError(f"--model {cfg.model}: a {entry.task} model, not {task}; pick {article} {task} model "
                          f"such as {some} (`cnnkit models --task {task}` lists them)")
    if cfg.pretrained not in ("", "torchvision") and not Path(cfg.pretrained).is_file():
        raise CnnkitError(f"--pretrained {cfg.pretrained}: file not found; give a weights file, 'torchvision', "
                          "or drop --pretrained")
    ours = bool(cfg.pretrained) and read_cnnkit_checkpoint(cfg.pretrained) is not None  # its encoder fits any model
    if cfg.pretrained and not ours and not accepts(cfg.model, "pretrained"):
        raise CnnkitError(f"--pretrained {cfg.pretrained}: not a cnnkit checkpoint, and {cfg.model} takes no other "
                          "weights; give a cnnkit run's best.pt (a pretrain run's, say), or pick a torchvision "
                          "backbone such as resnet18")
    freeze = getattr(cfg.options, "freeze_epochs", 0)  # an option of the tasks that fine-tune an encoder
    if freeze and not cfg.pretrained:
        raise CnnkitError("--freeze-epochs: there is no pretrained encoder to keep fixed; add --pretrained, or drop "
                          "--freeze-epochs")
    if freeze >= cfg.epochs > 0:
        raise CnnkitError(f"--freeze-epochs {freeze}: the encoder would never train in {cfg.epochs} epochs; "
                          "give fewer (1 or 2 is usual)")


class Model:
    """A checkpoint on PyTorch with its task's predictor: ``model.predict(images)``
    (a :class:`cnnkit.predictor.Predictor`, like an exported model)."""

    runtime = "pytorch"
    thread_safe = True  # prediction never changes the module (its options are arguments of post-processing)

    def __init__(self, module: ImageModel, checkpoint: dict[str, Any], device: torch.device):
        import torch  # noqa: F401 - a checkpoint's model runs on PyTorch

        self.module, self.checkpoint, self.device = module, checkpoint, device
        self.meta: ModelMeta = module.meta
        self.task: Task = get_task(self.meta.task)
        self.view: View = self.task
        self.options_type: type = self.task.options

    @property
    def classes(self) -> list[str]:
        return list(self.meta.classes)

    @staticmethod
    def to_pil(image: ImageLike) -> Image.Image:
        """Any image-like as a PIL image: a path, PIL, an ``(H, W[, C])`` uint8 array or ``(C, H, W)`` tensor."""
        import torch

        if isinstance(image, torch.Tensor):
            arr = image.detach().cpu()
            arr = arr.permute(1, 2, 0) if arr.ndim == 3 and arr.shape[0] in (1, 3, 4) else arr
            return as_pil(arr.numpy())
        return as_pil(image)

    def options(self) -> list[str]:
        """Keyword options ``predict`` takes for this model's task."""
        return [i.name for i in runtime_options(self.task.options, self.runtime)]

    def predict(self, images: ImageLike | Sequence[ImageLike], batch: int = 32, **options: Any) -> list[Result]:
        """Predict one image or a list (paths, PIL images, HxWxC arrays, CxHxW tensors): one
        :class:`cnnkit.results.Result` per image (the task's prediction dict, with ``.plot()``, ``.save()``, ...).

        ``options`` are the task's prediction options: the fields of its options dataclass
        (``cnnkit.tasks.<task>``), each with its default, unit and range; ``model.options()`` lists
        them, and ``cnnkit predict --help`` shows them as flags. Unknown ones raise CnnkitError.
        """
        chosen = make_options(self.task.options, options, self.meta.task, self.runtime)
        single = not isinstance(images, (list, tuple))
        items = [images] if single else list(images)  # type: ignore[arg-type]  # a list or tuple here
        pils = [self.to_pil(im) for im in items]
        out: list[dict] = []
        for start in range(0, len(items), batch):
            out += self.task.predict(self.module, pils[start:start + batch], chosen)
        return as_results(out, pils, items, self.view, self.meta)

    def embed(self, images: ImageLike | Sequence[ImageLike], batch: int = 64) -> np.ndarray:
        """Embeddings ``(N, D)`` float32 of one image or a list: the model's encoder (trunk) output averaged
        over space, for a checkpoint of any task (a pretrain run's, or a trained classifier's, ...).

        Compare them by cosine similarity; ``cnnkit.metrics.collection`` finds neighbours, clusters and
        near-duplicates.
        """
        import numpy as np

        from cnnkit.models.trunk import embed_images

        items = list(images) if isinstance(images, (list, tuple)) else [images]
        chunks = [embed_images(self.module, [self.to_pil(im) for im in items[i:i + batch]]).numpy()
                  for i in range(0, len(items), batch)]
        return np.concatenate(chunks) if chunks else np.zeros((0, 0), np.float32)

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        import torch

        with torch.no_grad():
            return self.module(images.to(self.device))


def load_checkpoint_model(weights: str | Path, device: str = "auto") -> Model:
    """A cnnkit checkpoint (``best.pt``/``last.pt``) for prediction, loaded safely (weights_only)."""
    from cnnkit.device import select_device
    from cnnkit.engine.checkpoint import load_checkpoint
    from cnnkit.models.wrapper import build_image_model, refuse_non_finite_outputs

    ckpt = load_checkpoint(weights)
    get_task(ckpt["meta"].task)  # the task's torch side registers its models before the model is built
    dev = select_device(device)
    module = build_image_model(ckpt["meta"])
    try:
        module.load_state_dict(ckpt["model"])
    except RuntimeError as e:
        raise CnnkitError(f"{weights}: weights do not fit {ckpt['meta'].model} ({str(e).splitlines()[0]})"
                          ) from None
    refuse_non_finite_outputs(module, str(weights))
    return Model(module.to(dev).eval(), ckpt, dev)


def task_parts(name: str) -> TaskParts:
    """The task registry's parts for an exported model of task ``name``."""
    spec = get_spec(name)
    return TaskParts(get_view(name), get_runner_class(name)(spec), spec.options)


def is_torchscript(path: Path) -> bool:
    """A TorchScript archive written by ``cnnkit export`` (its card in extra/cnnkit.json)."""
    if path.suffix.lower() == ".torchscript":
        return True
    try:
        with zipfile.ZipFile(path) as archive:
            return any(name.endswith("/extra/cnnkit.json") or name == "extra/cnnkit.json"
                       for name in archive.namelist())
    except (OSError, zipfile.BadZipFile):
        return False


def load(weights: str | Path, device: str = "auto", task: str | None = None, threads: int = 0) -> Predictor:
    """A checkpoint (``best.pt``), an .onnx or a TorchScript file, loaded for prediction; ``task`` refuses
    a model of another task. .onnx and TorchScript run on the CPU (``threads`` 0: one per core)."""
    path = Path(weights)
    if path.is_dir() and (path / "best.pt").is_file():  # a run folder: its best checkpoint, as users mean
        path = path / "best.pt"
    elif path.is_dir():
        raise CnnkitError(f"{weights}: a folder, not a model file; give a run's best.pt, an .onnx or a .torchscript")
    model: Any
    if path.suffix.lower() == ".onnx" or is_torchscript(path):
        if device not in ("auto", "cpu"):
            raise CnnkitError(f"--device {device}: exported files run on the CPU; drop --device")
        model = (OnnxModel if path.suffix.lower() == ".onnx" else TorchScriptModel)(path, task_parts, threads)
    else:
        model = load_checkpoint_model(path, device)
    if task is not None and model.meta.task != task:
        kind = "checkpoint" if model.runtime == "pytorch" else "model"
        raise CnnkitError(f"{weights}: a {model.meta.task} {kind}, not {task}; use weights trained for {task}")
    return model


def export(weights: str | Path, format: str = "onnx", imgsz: int = 0, dynamic: bool = False, half: bool = False,
           out: str | Path = "") -> tuple[Path, dict[str, str]]:
    """Export a checkpoint to ONNX or TorchScript (``cnnkit export``); returns the file and its metadata."""
    from cnnkit.export.exporter import export_model

    return export_model(load_checkpoint_model(weights, "cpu"), weights, format, imgsz, dynamic, half, out)


def val(weights: str | Path, data: str | Path, split: str = "auto", batch: int = 64, device: str = "auto",
        workers: int = 0, out: str | Path = "", verbose: bool = True, **options: Any) -> ValResult:
    """Score a checkpoint, .onnx or TorchScript file on labelled data, as ``cnnkit val`` does.

    ``data``: any training layout; ``split``: auto, val, train, test or all; ``options``: the task's
    evaluation options (``iou``, ``tta``, ...). Returns a :class:`cnnkit.validate.ValResult`: ``.metrics``
    (fractions 0..1) and ``.out``, the folder of reports. ``verbose`` prints the table.

    >>> cnnkit.val("runs/segment/exp/best.pt", "street/").metrics["miou"]
    """
    from cnnkit.validate import validate

    done = validate(weights, data, split, batch, device, workers, False, out, options)
    if verbose:
        print("\n".join([t for t in (done.table,) if t] + [done.summary()]))
    return done


__all__ = ["Model", "Result", "TrainConfig", "ValResult", "export", "is_torchscript",
           "iter_sources", "load", "load_checkpoint_model", "train", "train_with", "val"]


if TYPE_CHECKING:  # mypy checks that every loaded model keeps the one Predictor face
    _checkpoint: Predictor = Model(None, {}, None)  # type: ignore[arg-type]  # (the arguments do not matter)
    _onnx: Predictor = OnnxModel("m.onnx", task_parts)
    _torchscript: Predictor = TorchScriptModel("m.torchscript", task_parts)

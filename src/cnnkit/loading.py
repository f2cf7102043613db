"""Loading a model for prediction: ``load`` (a checkpoint, .onnx or TorchScript file) and ``Model``, a
checkpoint on PyTorch. Its own module so that ``cnnkit.validate`` loads models without importing
``cnnkit.api`` (which calls it): no import cycle. ``cnnkit.api`` re-exports these names.
"""

from __future__ import annotations

import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias

from PIL import Image

from cnnkit.data.images import as_pil
from cnnkit.errors import CnnkitError
from cnnkit.export.runtime import OnnxModel, TaskParts, TorchScriptModel
from cnnkit.meta import ModelMeta
from cnnkit.options import make_options, runtime_options
from cnnkit.predictor import Predictor, View
from cnnkit.results import Result, as_results
from cnnkit.tasks import get_runner_class, get_spec, get_task, get_view

if TYPE_CHECKING:
    import numpy as np
    import torch

    from cnnkit.engine.task import Task
    from cnnkit.explain.core import Explanation
    from cnnkit.models.wrapper import ImageModel

    ImageLike: TypeAlias = str | Path | Image.Image | np.ndarray | torch.Tensor


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

    def explain(self, images: ImageLike | Sequence[ImageLike], method: str = "gradcam", target: str | int = "",
                topk: int = 1, layer: str = "", reference: ImageLike | None = None, **options: Any
                ) -> list[Explanation]:
        """Saliency maps of one image or a list (as ``predict`` takes them): one
        :class:`cnnkit.explain.core.Explanation` per image, ``.maps`` ``(T, H, W)`` float32 0..1 at the image's size
        with ``.labels``, ``.overlay(i)`` and ``.save(folder, stem)``.

        ``method``: gradcam, gradcam++, scorecam, occlusion or ig; ``target``: a class name or index (else the
        ``topk`` most probable classes, the predicted classes, each detection); ``layer``: as ``cnnkit summary``
        names it ("" = the last stage of the encoder whose map is at least 7 px a side at the working size);
        ``reference``: the image a recognition model compares with; ``options``: the task's prediction options
        (``score_thresh``, ...). The model is unchanged. CnnkitError for a ``topk`` not a whole number >= 1, a
        ``reference`` to a model that is not a recognition model, an unknown method, layer or target.
        """
        from cnnkit.engine.task import ExplainRequest
        from cnnkit.explain.core import explain_images, refuse_unhonoured

        if isinstance(topk, bool) or not isinstance(topk, int) or topk < 1:
            raise CnnkitError(f"topk={topk!r}: give a whole number of at least 1 (the classes to explain)")
        if topk != 1 and "topk" not in self.options():  # a task without top-k classes would ignore it
            raise CnnkitError(f"topk: a {self.meta.task} model has no top-k classes to explain; drop topk")
        refuse_unhonoured(options)
        if reference is not None and self.meta.task != "recognize":
            raise CnnkitError(f"reference: only a recognition model compares an image with a reference; this is a "
                              f"{self.meta.task} model, so drop reference")
        chosen = make_options(self.task.options, options, self.meta.task, self.runtime)
        items = list(images) if isinstance(images, (list, tuple)) else [images]
        request = ExplainRequest(target="" if target is None else str(target), topk=topk, options=chosen,
                                 reference=None if reference is None else self.to_pil(reference))
        return explain_images(self, [self.to_pil(im) for im in items], method, request, layer)

    def click(self, image: ImageLike, clicks: Sequence[Any], prev_mask: np.ndarray | None = None,
              threshold: float = 0.5) -> np.ndarray:
        """A click model's mask of the object that ``clicks`` point at: bool ``(H, W)`` at the image's size.

        ``clicks``: :class:`cnnkit.Click` (``y``, ``x`` in pixels, ``positive``) or ``(x, y, positive)`` tuples;
        ``prev_mask``: the mask the last call gave, which the model corrects; ``threshold``: the probability
        above which a pixel is the object. CnnkitError for a model of another task, clicks outside the image or
        a ``prev_mask`` of another size (see :func:`cnnkit.click_mask`)."""
        import numpy as np

        from cnnkit.annotate.inputs import as_clicks, as_image_array, as_prev

        predict_clicks = getattr(self.task, "predict_clicks", None)  # the click task's; no other task has it
        if not callable(predict_clicks):
            raise CnnkitError(f"a {self.meta.task} model takes no clicks; train a click model with "
                              "`cnnkit train click --data D` and load its best.pt")
        if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0 < threshold < 1:
            raise CnnkitError(f"threshold={threshold!r}: give a probability strictly between 0 and 1 (default 0.5)")
        array = as_image_array(self.to_pil(image) if not isinstance(image, np.ndarray) else image)
        shape = (int(array.shape[0]), int(array.shape[1]))
        chosen = as_clicks(clicks, shape)
        if not chosen:
            return np.zeros(shape, bool)
        prob = predict_clicks(self.module, Image.fromarray(array), chosen, as_prev(prev_mask, shape))
        return np.asarray(prob) > threshold

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
    if not isinstance(weights, (str, Path)):
        raise CnnkitError(f"cnnkit.load: weights must be a path (best.pt, .onnx, .torchscript or a run folder), "
                          f"got {type(weights).__name__}")
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


if TYPE_CHECKING:  # mypy checks that every loaded model keeps the one Predictor face
    _checkpoint: Predictor = Model(None, {}, None)  # type: ignore[arg-type]  # (the arguments do not matter)
    _onnx: Predictor = OnnxModel("m.onnx", task_parts)
    _torchscript: Predictor = TorchScriptModel("m.torchscript", task_parts)

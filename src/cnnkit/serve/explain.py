"""POST /explain: where a checkpoint looks when it predicts, as heatmaps (``cnnkit.loading.Model.explain``).

One image (multipart field ``file``, or the raw body, as /predict) -> one map per target (the top classes, a
class's pixels, each detection, the likeness to a ``reference`` image for a recognition model), each as a
heatmap over the image and as the raw map (an 8-bit grey PNG), both as ``data:`` URLs a page shows as they are.

Explanations need gradients and the network's layers: an .onnx or TorchScript file answers 409, as does a model
with nothing to explain (pretrain: its predictions are embeddings). The route meets the guards /predict meets
(``cnnkit.serve.uploads``: key, upload size and time, pixels) and runs in the same worker pool, within the same
time limit (504): explanations are slow on the CPU (ScoreCAM runs the model once per channel of the layer), and
/health is answered meanwhile. One explanation runs at a time: the explanation methods hook the model's layers,
and two at once would see each other's activations.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from fastapi import FastAPI, HTTPException, Query, Request
from PIL import Image

from cnnkit.errors import CnnkitError
from cnnkit.log import LOGGER
from cnnkit.options import option_infos
from cnnkit.recognition.identify import TASK as RECOGNIZE
from cnnkit.serve.recognition import BINARY, Upload, multipart, one, read_form
from cnnkit.serve.uploads import Limits, Runner, check_key, load_upload, open_upload, png_base64, read_capped

ROUTE = "POST /explain"
OWN = ("method", "target", "topk", "layer")  # the route's query parameters; the others are prediction options
MAX_TOPK = 20  # maps one request may ask for (classify): each costs a backward pass, ScoreCAM's far more
NOTHING_TO_EXPLAIN = ("pretrain",)  # tasks whose predictions are embeddings: no class, region or detection
DEFAULT_METHOD = "gradcam"

OptionParser = Callable[[Request, tuple[str, ...]], dict[str, Any]]  # query -> the task's prediction options


def data_url(picture: Image.Image) -> str:
    """A PIL image as a ``data:image/png;base64,...`` URL."""
    return "data:image/png;base64," + png_base64(picture)


def grey_png(heatmap: np.ndarray) -> Image.Image:
    """A map ``(H, W)`` float in [0, 1] as an 8-bit grey image (0..255; NaN as 0)."""
    scaled = np.nan_to_num(np.clip(np.asarray(heatmap, np.float32), 0, 1)) * 255
    return Image.fromarray(np.round(scaled).astype(np.uint8), mode="L")


def answer_body(explanation: Any) -> dict[str, Any]:
    """An ``Explanation`` (``cnnkit.explain.core``: maps ``(T, H, W)`` at the image's size) as the route's JSON:
    ``method``, ``layer`` and per target its ``label``, ``overlay`` (a data URL) and ``map`` (``shape`` [H, W],
    ``png``: a data URL of the map as 8-bit grey) and ``flat`` (the map is all 0)."""
    maps = np.asarray(explanation.maps)
    flat = list(getattr(explanation, "flat", [])) or [not bool(m.any()) for m in maps]
    targets = [{"label": str(label), "overlay": data_url(explanation.overlay(i)),
                "map": {"shape": [int(maps.shape[1]), int(maps.shape[2])], "png": data_url(grey_png(maps[i]))},
                "flat": bool(flat[i])}  # all 0: the method found no evidence for it at this layer
               for i, label in enumerate(explanation.labels)]
    return {"method": explanation.method, "layer": explanation.layer, "targets": targets}


class ExplainRoute:
    """POST /explain over one model and its server's pool; ``parse_options`` reads the task's prediction options
    from the query (as /predict: 400 for one the model does not take, 422 for a bad value)."""

    def __init__(self, runner: Runner, limits: Limits, parse_options: OptionParser) -> None:
        self.model, self.runner, self.limits = runner.predictor, runner, limits
        self.parse_options = parse_options
        self.explainer: Callable[..., list[Any]] | None = getattr(self.model, "explain", None)  # a checkpoint's
        names = [*OWN, *(o.name for o in option_infos(self.model.options_type))]
        # the library's messages name CLI flags (--target, --score-thresh): here they are query parameters
        self.flags = sorted(((f"--{n.replace('_', '-')}", f"the query {n}") for n in names), key=lambda f: -len(f[0]))
        self.lock = threading.Lock()  # one explanation at a time: the methods hook the shared model's layers
        self.methods: tuple[str, ...] = ()
        if not self.refusal():  # a checkpoint, so torch is loaded: the methods may be imported
            from cnnkit.explain.methods import METHODS

            self.methods = tuple(METHODS)

    def refusal(self) -> str:
        """Why this model cannot be explained ("" when it can)."""
        task = self.model.meta.task
        if self.model.runtime != "pytorch" or not callable(self.explainer):
            kind = {"onnx": "an .onnx", "torchscript": "a TorchScript"}.get(self.model.runtime, "an exported")
            return (f"explanations need the model's checkpoint (best.pt): {kind} file holds no gradients or named "
                    "layers; serve the checkpoint (cnnkit serve --weights best.pt)")
        if task in NOTHING_TO_EXPLAIN:
            return (f"a {task} model predicts embeddings, with no class, region or detection to explain; "
                    "explain a model fine-tuned from it (cnnkit train classify --pretrained ...)")
        return ""

    def info(self) -> dict[str, Any] | None:
        """What /info says of explanations: the route, its methods and whether it needs a ``reference`` image;
        None when this model cannot be explained."""
        if self.refusal():
            return None
        return {"route": ROUTE, "methods": list(self.methods), "default": DEFAULT_METHOD,
                "reference": self.model.meta.task == RECOGNIZE}

    async def uploads(self, request: Request) -> tuple[Upload, Upload | None]:
        """The image (multipart ``file``, or the raw body) and the optional ``reference``, headers read."""
        if not request.headers.get("content-type", "").startswith("multipart/form-data"):
            body = await read_capped(request, int(self.limits.max_upload_mb * 1_000_000), self.limits.body_timeout_s)
            return Upload("upload", open_upload(body, self.limits.max_pixels)), None
        files, _ = await read_form(request, self.limits, 2)
        if "file" not in files and len(set(files) - {"reference"}) == 1:  # the only other file, as /predict
            files["file"] = files.pop(next(iter(set(files) - {"reference"})))
        image = one(files, "file", "/explain")
        reference = one(files, "reference", "/explain") if "reference" in files else None
        unknown = sorted(set(files) - {"file", "reference"})
        if unknown:
            raise HTTPException(400, f"/explain takes the fields 'file' and 'reference', not {unknown}")
        return image, reference

    def _work(self, image: Image.Image, reference: Image.Image | None, method: str, target: str, topk: int,
              layer: str, options: dict[str, Any]) -> dict[str, Any]:
        """In the pool: decode, explain, encode."""
        image = load_upload(image)
        extra = {"reference": load_upload(reference)} if reference is not None else {}
        assert self.explainer is not None  # refusal() said so before admission
        try:
            with self.lock, self.runner.predicting():
                found = self.explainer([image], method=method, target=target, topk=topk, layer=layer, **extra,
                                       **options)
            return answer_body(found[0])
        except CnnkitError as e:  # an unknown target or layer, no detection above the threshold, ...
            text = str(e)
            for flag, query in self.flags:
                text = text.replace(flag, query)
            raise HTTPException(422, text) from None
        except HTTPException:
            raise
        except Exception as e:  # logged here whole, answered in one line: no traceback to clients
            LOGGER.exception("POST /explain failed")
            raise HTTPException(500, f"explanation failed ({type(e).__name__}); see the server's log") from None

    async def explain(
        self, request: Request,
        method: str = Query(DEFAULT_METHOD, description="gradcam, gradcam++ or scorecam (pytorch-grad-cam; "
                            "ScoreCAM runs the model once per channel: slow on a CPU), occlusion or ig (captum)"),
        target: str = Query("", description="a class name or index to explain [default: the task's choice: the "
                            "top classes, the predicted classes, each detection]"),
        topk: int = Query(1, ge=1, le=MAX_TOPK, description="classify: the most probable classes explained, "
                          "one map each"),
        layer: str = Query("", description="the layer the map is taken at, named as `cnnkit summary` prints it "
                           "[default: the last stage of the encoder]"),
    ) -> dict:
        """One image, as a multipart file (field ``file``) or as the raw request body; a recognition model
        also takes the image it is compared with (field ``reference``). Returns ``method``, ``layer`` and
        ``targets``: per target its ``label``, ``overlay`` (the heatmap over the image) and ``map`` (``shape``
        [H, W] and ``png``: the map, 0..1 as 8-bit grey), both PNGs as data URLs at the image's size. The
        task's prediction options are query parameters as for /predict. 409 for an .onnx or TorchScript model
        (explanations need the checkpoint, best.pt) or one with nothing to explain; 422 for an unknown method,
        target or layer, or a recognition model's missing reference."""
        start = time.perf_counter()
        check_key(request, self.limits.api_key)
        why = self.refusal()
        if why:
            raise HTTPException(409, why)
        if method not in self.methods:
            raise HTTPException(422, f"method '{method}' is not one of {list(self.methods)}; pick one of them")
        options = self.parse_options(request, OWN)
        image, reference = await self.uploads(request)
        if self.model.meta.task == RECOGNIZE and reference is None:
            raise HTTPException(422, "a recognition model explains what makes two images alike: send the image it "
                                     "is compared with in the multipart field 'reference' (and the image in 'file')")
        body = await self.runner.call(self._work, image.image, reference.image if reference else None, method,
                                      target, topk, layer, options)
        return {"task": self.model.meta.task, **body, "time_ms": round((time.perf_counter() - start) * 1000, 1)}


def add_explain(app: FastAPI, runner: Runner, limits: Limits, parse_options: OptionParser,
                option_parameters: Sequence[dict[str, Any]] = ()) -> ExplainRoute:
    """Add POST /explain to ``app`` (for every model: one that cannot be explained answers 409 saying why);
    ``option_parameters``: the OpenAPI entries of the task's prediction options (those named as the route's
    own parameters are left out)."""
    route = ExplainRoute(runner, limits, parse_options)
    extra = multipart({"file": BINARY, "reference": BINARY}, ["file"], raw=True)
    extra["parameters"] = [p for p in option_parameters if p["name"] not in OWN]
    app.add_api_route("/explain", route.explain, methods=["POST"], tags=["explain"], openapi_extra=extra,
                      summary="Explain a prediction: heatmaps of where the model looks",
                      responses={409: {"description": "not a checkpoint (an .onnx or TorchScript model), or a "
                                                      "model with nothing to explain"},
                                 422: {"description": "unknown method, target or layer; missing reference"}})
    return route

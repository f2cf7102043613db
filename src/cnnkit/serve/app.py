"""The HTTP service: GET /health, GET /info, POST /predict, POST /explain (a checkpoint's heatmaps:
``cnnkit.serve.explain``), the web page at /, OpenAPI docs at /docs; for a recognition model also POST /verify,
POST /search and /gallery (``cnnkit.serve.recognition``).

Guards, in the order a request meets them: the API key when one is set (401), a time limit on
receiving the upload (408: a client that sends slowly cannot hold a connection forever), the upload
size (413, also for chunked bodies, which are read to their end so that the client gets the answer
and not a reset connection), the image's pixel count from its header (413) and anything Pillow cannot
identify (400), both before admission to a bounded pool (503 when full); then, in the pool and off the
event loop, the decoding (400 for a corrupt body) and the work, within a time limit (504).
``/health`` stays fast under any of it.
Uploads stay in memory, or in Starlette's spooled temporary files for multipart bodies; nothing is
written anywhere else. A client that leaves mid-upload is logged in one line. The guards and the pool are
``cnnkit.serve.uploads``, shared by every route that takes an image.
"""

from __future__ import annotations

import time
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
from fastapi import FastAPI, HTTPException, Query, Request
from fastapi.responses import HTMLResponse
from PIL import Image

from cnnkit import __version__
from cnnkit.errors import CnnkitError
from cnnkit.log import LOGGER
from cnnkit.options import make_options, option_infos, runtime_options
from cnnkit.predictor import Predictor
from cnnkit.serve.docs import add_docs
from cnnkit.serve.explain import add_explain
from cnnkit.serve.recognition import add_recognition
from cnnkit.serve.uploads import Limits, Runner, check_key, image_bytes, open_upload, png_base64, read_capped


def info(predictor: Predictor) -> dict[str, Any]:
    """The model card as /info shows it, with the prediction options /predict takes (name, type, default,
    unit, range)."""
    meta = predictor.meta
    shape = getattr(predictor, "input_shape", None)
    return {"task": meta.task, "model": meta.model, "classes": list(meta.classes),
            "colours": [list(c) for c in meta.colours] or None,
            "input_size": shape[2:] if shape else (meta.imgsz or list(meta.crop) or None),
            "options": predictor.options(),
            "option_details": [o.describe() for o in runtime_options(predictor.options_type, predictor.runtime)],
            "runtime": "onnxruntime" if predictor.runtime == "onnx" else predictor.runtime,
            "model_card": meta.to_dict(), "cnnkit_version": __version__}


RESERVED = ("overlay", "mask")  # query parameters of the answer's form, not prediction options


def query_options(request: Request, predictor: Predictor, reserved: tuple[str, ...] = RESERVED) -> dict[str, Any]:
    """The prediction options in the query string (but the route's own parameters, ``reserved``), parsed and
    checked by the task's options dataclass; 400 for one the model does not take, 422 for a bad value (as
    FastAPI's own parameters)."""
    infos = {o.name: o for o in option_infos(predictor.options_type)}
    out = {}
    keys = [key for key, _ in request.query_params.multi_items()]
    twice = sorted({key for key in keys if keys.count(key) > 1})
    if twice:
        raise HTTPException(422, f"query parameters {twice} given more than once; give each once")
    for key, text in request.query_params.items():
        if key in reserved:
            continue
        info = infos.get(key)
        if info is None or predictor.runtime not in info.runtimes:
            raise HTTPException(400, f"options ['{key}'] do not apply to a {predictor.meta.task} model on "
                                     f"{predictor.runtime}; it takes {predictor.options()}")
        try:
            out[key] = info.parse(text)
        except ValueError as e:
            raise HTTPException(422, f"query parameter {key}: {e}") from None
    try:  # the options dataclass's own checks across fields (a tile too small for the model, ...)
        make_options(predictor.options_type, out, predictor.meta.task, predictor.runtime)
    except CnnkitError as e:
        raise HTTPException(422, f"query parameters: {e}") from None
    return out


def openapi_parameters(predictor: Predictor) -> list[dict[str, Any]]:
    """OpenAPI entries for the options of this model's task, generated from its options dataclass."""
    kinds = {bool: "boolean", int: "integer", float: "number", str: "string"}
    params = []
    for o in runtime_options(predictor.options_type, predictor.runtime):
        schema: dict[str, Any] = {"type": kinds.get(o.kind, "string"), "default": o.default}
        schema.update({k: v for k, v in (("minimum", o.low), ("maximum", o.high)) if v is not None})
        if o.choices:
            schema["enum"] = list(o.choices)
        params.append({"name": o.name, "in": "query", "required": False, "schema": schema,
                       "description": o.help + (f" ({o.unit})" if o.unit else "")})
    return params


def response_body(predictor: Predictor, image: Image.Image, prediction: dict, overlay: bool, mask: bool) -> dict:
    """JSON for one prediction: the task's record, plus the class-id mask (segment) and the overlay as
    base64 PNGs when asked."""
    body = dict(predictor.view.record(prediction))
    if mask and "mask" in prediction:
        body["mask_png"] = png_base64(Image.fromarray(np.asarray(prediction["mask"], np.uint8)))
    if overlay:
        body["overlay_png"] = png_base64(predictor.view.visualise(image, prediction, predictor.meta))
    return body


def create_app(predictor: Predictor, limits: Limits = Limits(), gallery: str | Path | None = None,
               allow_enrol: bool = False) -> FastAPI:
    """The app for one loaded model (a checkpoint, an .onnx or a TorchScript file: ``cnnkit.load``). A
    recognition model's app also verifies, searches ``gallery`` (a .npz file, made by the first enrolment when
    missing) and enrols (``cnnkit.serve.recognition``; ``allow_enrol``: without an API key too). CnnkitError
    for a gallery another model made, or ``gallery``/``allow_enrol`` with a model of another task."""
    app = FastAPI(title="cnnkit", version=__version__, docs_url=None, redoc_url=None,
                  description=f"Predictions of a cnnkit {predictor.meta.task} model "
                              f"({predictor.meta.model}, {predictor.meta.num_classes} classes).")
    add_docs(app)  # Swagger UI from the installed package, not a CDN
    runner = Runner(predictor, limits)
    recognition = add_recognition(app, runner, limits, gallery, allow_enrol)  # None unless a recognition model
    app.state.recognition = recognition  # serve() says which routes the key guards
    explain = add_explain(app, runner, limits, lambda request, own: query_options(request, predictor, own),
                          openapi_parameters(predictor))  # POST /explain: 409 unless a checkpoint
    cap = int(limits.max_upload_mb * 1_000_000)
    page = resources.files("cnnkit.serve").joinpath("page.html").read_text(encoding="utf-8")

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def index() -> str:
        return page

    @app.get("/health")
    def health() -> dict:
        return {"status": "ok"}

    @app.get("/info")
    def get_info() -> dict:
        """Task, model, classes and their colours, input size, the options /predict takes, whether it
        needs an API key (``api_key_required``), and for a recognition model (else null) ``recognition``: its
        routes, threshold, gallery (file name), identities enrolled and whether enrolment is open (``enrol``);
        ``explain``: POST /explain's methods and whether it needs a ``reference`` image (null when the model
        cannot be explained: not a checkpoint, or nothing to explain)."""
        return {**info(predictor), "api_key_required": bool(limits.api_key),
                "recognition": recognition.info() if recognition is not None else None,
                "explain": explain.info()}

    @app.post("/predict", openapi_extra={"parameters": openapi_parameters(predictor)})
    async def predict(
        request: Request,
        overlay: bool = Query(False, description="also return the annotated image as a base64 PNG"),
        mask: bool = Query(True, description="segment: return the class-id mask as a base64 PNG"),
    ) -> dict:
        """One image, as a multipart file (field ``file``) or as the raw request body. Returns the task's
        prediction: classify ``topk``; segment class ``areas`` and ``mask_png``; instance ``instances``
        (class, score, box [x0, y0, x1, y1] px, COCO RLE mask); with ``overlay``, ``overlay_png``;
        ``warnings`` when the image is far from the training images (size, colour, bit depth, brightness).
        The task's prediction options are query parameters (listed by /info)."""
        start = time.perf_counter()
        check_key(request, limits.api_key)
        options = query_options(request, predictor)
        data = await image_bytes(request, await read_capped(request, cap, limits.body_timeout_s))
        image = open_upload(data, limits.max_pixels)  # a bomb or a non-image is refused here, without a slot

        def answer(image: Image.Image, prediction: dict) -> dict:
            body = response_body(predictor, image, prediction, overlay, mask)
            far = runner.watch.check(image, "upload")  # each answer says when its input is far from training's
            return {"task": predictor.meta.task, **body, **({"warnings": far} if far else {})}

        body = await runner.run(image, options, answer)
        return {**body, "time_ms": round((time.perf_counter() - start) * 1000, 1)}

    app.state.runner = runner
    return app


def serve(predictor: Predictor, host: str = "127.0.0.1", port: int = 8000, limits: Limits = Limits(),
          gallery: str | Path | None = None, allow_enrol: bool = False) -> None:
    """Run the app on uvicorn until interrupted (``gallery``, ``allow_enrol``: as ``create_app``)."""
    import uvicorn

    app = create_app(predictor, limits, gallery, allow_enrol)  # before any log line: a foreign gallery is refused
    if host not in ("127.0.0.1", "localhost", "::1") and not limits.api_key:
        LOGGER.warning("serving on %s: reachable from other machines, and anyone there may call /predict%s; set "
                       "an API key (--api-key or CNNKIT_API_KEY)", host,
                       " and change the gallery (--allow-enrol)" if allow_enrol else "")
    routes = ("/predict, /explain and the recognition routes need" if app.state.recognition is not None
              else "/predict and /explain need")
    LOGGER.info("cnnkit serve: http://%s:%d (page at /, API docs at /docs)%s", host, port,
                f"; {routes} the API key" if limits.api_key else "")
    # connections beyond a bound get 503 from uvicorn before any of them is read: slow clients cannot
    # take every socket
    uvicorn.run(app, host=host, port=port, log_level="info",
                limit_concurrency=CONNECTIONS + limits.workers + limits.queue, timeout_keep_alive=5)


CONNECTIONS = 64  # open connections served beyond the inference pool's (uploads being received, /health, ...)

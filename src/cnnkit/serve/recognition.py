"""The HTTP routes of a recognition model (from ``cnnkit train recognize``): POST /verify, POST /search,
GET /gallery, POST /gallery and DELETE /gallery/{name}, over ``cnnkit.recognition.identify``.

Keys: when the server has an API key, every route here needs it, as /predict does. Without one, enrolment
and removal are refused (403) unless the server was started with ``--allow-enrol``: a gallery that anyone who
can reach the server may change is one anyone may enrol into, and be recognised as whoever they name.

The gallery is one ``.npz`` file (``--gallery``), made by the first enrolment when missing. Changes are made
under a lock: the file is read afresh (changes another process saved are kept), changed, saved atomically,
and then published; searches use the gallery published when they start, never one being changed. A change
whose request timed out (504) may still be saved: list the gallery to see.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import APIRouter, FastAPI, HTTPException, Query, Request
from PIL import Image

from cnnkit.errors import CnnkitError
from cnnkit.predictor import Predictor
from cnnkit.recognition.gallery import Gallery
from cnnkit.recognition.identify import TASK, embed, open_gallery, search, verify
from cnnkit.serve.uploads import Limits, Runner, check_key, image_bytes, load_upload, open_upload, read_capped

ROUTES = ("POST /verify", "POST /search", "GET /gallery", "POST /gallery", "DELETE /gallery/{name}")
MAX_IMAGES = 64  # images one enrolment may send (all within the upload size limit)
MAX_NAME = 200  # characters of an identity's name
NO_KEY = ("changing the gallery is off: this server has no API key, and without one anyone who can reach it "
          "could enrol or remove identities; start it with --api-key (or CNNKIT_API_KEY), or with --allow-enrol "
          "to let anyone change the gallery")
BINARY = {"type": "string", "format": "binary"}


@dataclass
class Upload:
    filename: str  # the client's file name (its last part), else the form field's name
    image: Image.Image  # its header read (open_upload), not yet decoded


@contextmanager
def http_errors(status: int, path: Path | None = None) -> Iterator[None]:
    """The library's refusals (CnnkitError) as JSON errors with ``status``, its CLI flags named as the query's,
    and ``path`` (the gallery's) by its file name only: clients need not learn the server's folders."""
    try:
        yield
    except CnnkitError as e:
        text = str(e).replace("--force", "the query force=true").replace("--threshold", "the query threshold")
        raise HTTPException(status, text.replace(str(path), path.name) if path else text) from None


class GalleryStore:
    """The server's gallery file: changed under a lock, searched through the gallery last published."""

    def __init__(self, model: Predictor, path: str | Path | None) -> None:
        self.model, self.path = model, Path(path) if path else None
        self.lock = threading.Lock()
        # refused here, at start-up, when another model made it (CnnkitError: cnnkit serve exits 2)
        self.current: Gallery | None = open_gallery(model, self.path, create=True) if self.path else None
        self.seen = self.stamp()  # the file as self.current was read from it

    def stamp(self) -> tuple[int, int] | None:
        """(modification time in ns, size) of the gallery file, None when there is none."""
        try:
            st = self.path.stat() if self.path is not None else None
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_size) if st is not None else None

    def published(self, nonempty: bool = False) -> Gallery:
        """The gallery as last saved, read again when the file changed on disk (`cnnkit gallery add|remove`
        beside the server: a removed identity must stop matching at once); 409 when the server has none, or
        (``nonempty``) when it holds no one."""
        if self.path is not None and self.stamp() != self.seen:
            with self.lock:
                stamp = self.stamp()
                if stamp != self.seen and stamp is not None:
                    self.current, self.seen = self._fresh(), stamp
        if self.current is None:
            raise HTTPException(409, "this server has no gallery: start it with --gallery FILE.npz to search and "
                                     "enrol (POST /verify needs none)")
        if nonempty and not len(self.current):
            raise HTTPException(409, f"the gallery {self.current.path.name if self.current.path else ''} holds no "
                                     "identities yet; enrol some with POST /gallery (fields name and images) or "
                                     "`cnnkit gallery add`")
        return self.current

    def _fresh(self) -> Gallery:
        assert self.path is not None
        with http_errors(409, self.path):  # changed on disk since start-up into another model's gallery, or damaged
            return open_gallery(self.model, self.path, create=True)

    def add(self, name: str, vectors: Any, sources: list[str]) -> dict[str, Any]:
        with self.lock:
            gallery = self._fresh()
            with http_errors(422, self.path):
                count = gallery.add(name, vectors, sources)
            with http_errors(500, self.path):
                gallery.save(self.path)
            self.current, self.seen = gallery, self.stamp()
        return {"name": name, "added": len(sources), "images": count, "vectors": len(gallery),
                "identities": len(gallery.names)}

    def remove(self, name: str) -> dict[str, Any]:
        with self.lock:
            gallery = self._fresh()
            known = name in gallery.names
            with http_errors(500 if known else 404, self.path):  # its message names the enrolled ones
                removed = gallery.remove(name)
            with http_errors(500, self.path):
                gallery.save(self.path)
            self.current, self.seen = gallery, self.stamp()
        return {"name": name, "removed": removed, "vectors": len(gallery), "identities": len(gallery.names)}


def multipart(properties: dict[str, Any], required: list[str], raw: bool = False) -> dict[str, Any]:
    """An OpenAPI request body of a multipart form (``raw``: or the image itself as the body)."""
    content: dict[str, Any] = {"multipart/form-data": {"schema": {"type": "object", "properties": properties,
                                                                  "required": required}}}
    if raw:
        content["image/*"] = {"schema": BINARY}
    return {"requestBody": {"required": True, "content": content}}


async def read_form(request: Request, limits: Limits, max_files: int) -> tuple[dict[str, list[Upload]], dict[str, str]]:
    """A multipart form read within the upload limits (size, time, pixels: as /predict): its images by field,
    each from ``open_upload`` (400 or 413 as /predict), and its text fields."""
    body = await read_capped(request, int(limits.max_upload_mb * 1_000_000), limits.body_timeout_s)
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise HTTPException(400, "send a multipart form (multipart/form-data) with the fields this route names")

    async def replay() -> dict:
        return {"type": "http.request", "body": body, "more_body": False}

    form = await Request(request.scope, replay).form(max_files=max_files, max_fields=20)
    try:
        files: dict[str, list[Upload]] = {}
        texts: dict[str, str] = {}
        for field, value in form.multi_items():
            if isinstance(value, str):
                texts[field] = value
                continue
            name = Path(value.filename or "").name or f"{field} {len(files.get(field, [])) + 1}"
            try:
                image = open_upload(await value.read(), limits.max_pixels)
            except HTTPException as e:  # which of the form's files: /predict has one, these several
                raise HTTPException(e.status_code, f"field '{field}' ({name}): {e.detail}") from None
            files.setdefault(field, []).append(Upload(name, image))
        return files, texts
    finally:
        await form.close()


def one(files: dict[str, list[Upload]], field: str, route: str) -> Upload:
    """The one image of ``field``; 400 when it is missing or repeated."""
    given = files.get(field, [])
    if len(given) != 1:
        raise HTTPException(400, f"{route} takes one image in the field '{field}', got {len(given)}")
    return given[0]


class RecognitionRoutes:
    """The routes, over one model, its server's pool (``Runner``) and its gallery."""

    def __init__(self, runner: Runner, limits: Limits, gallery: str | Path | None, allow_enrol: bool) -> None:
        self.model, self.runner, self.limits = runner.predictor, runner, limits
        self.store = GalleryStore(self.model, gallery)
        self.allow_enrol = allow_enrol

    def _embed_work(self, uploads: list[Upload], force: bool) -> Any:
        images = [load_upload(u.image) for u in uploads]  # decoded in the pool, as /predict's
        with self.runner.predicting(), http_errors(422):
            return embed(self.model, images, [u.filename for u in uploads], force)

    def _enrol_work(self, name: str, uploads: list[Upload], force: bool) -> dict[str, Any]:
        vectors = self._embed_work(uploads, force)  # before the gallery's lock: enrolments embed at once
        return self.store.add(name, vectors, [u.filename for u in uploads])

    def _verify_work(self, a: Upload, b: Upload, threshold: float | None, force: bool) -> dict[str, Any]:
        images = [load_upload(a.image), load_upload(b.image)]
        with self.runner.predicting(), http_errors(422):
            return verify(self.model, images[0], images[1], threshold, force, names=[a.filename, b.filename])

    def _search_work(self, image: Image.Image, k: int, threshold: float | None, force: bool) -> dict[str, Any]:
        gallery = self.store.published(nonempty=True)  # the one published now: not changed while searched
        image = load_upload(image)
        with self.runner.predicting(), http_errors(422, self.store.path):
            found = search(self.model, gallery, [image], k, threshold, names=["upload"], force=force)[0]
        used = next((t for t in (threshold, gallery.threshold, self.model.meta.value("threshold", None))
                     if t is not None), None)  # the one search compared with
        return {"identity": found["identity"], "matches": found["matches"], "threshold": used}

    async def verify(
        self, request: Request,
        threshold: float | None = Query(None, ge=0, le=2, description="same identity when the cosine distance is "
                                        "at most this [default: the model card's, chosen at training]"),
        force: bool = Query(False, description="compare images far from the training images in size or colour"),
    ) -> dict:
        """Two images, in the multipart fields ``a`` and ``b``: are they the same identity? Returns ``same``,
        ``distance`` (cosine, 0 to 2) and the ``threshold`` it was compared with."""
        start = time.perf_counter()
        check_key(request, self.limits.api_key)
        files, _ = await read_form(request, self.limits, 2)
        a, b = one(files, "a", "/verify"), one(files, "b", "/verify")
        body = await self.runner.call(self._verify_work, a, b, threshold, force)
        return {**body, "time_ms": round((time.perf_counter() - start) * 1000, 1)}

    async def search(
        self, request: Request,
        k: int = Query(5, ge=1, le=100, description="the nearest identities returned"),
        threshold: float | None = Query(None, ge=0, le=2, description="a match when the cosine distance is at most "
                                        "this [default: the gallery's]; beyond it the identity is 'unknown'"),
        force: bool = Query(False, description="search with an image far from the training images"),
    ) -> dict:
        """One image (multipart field ``image``, or the raw body): its ``k`` nearest enrolled identities
        (``matches``: name, distance, match) and its ``identity``: the nearest within the threshold, else
        "unknown". 409 when the server has no gallery or it is empty."""
        start = time.perf_counter()
        check_key(request, self.limits.api_key)
        self.store.published(nonempty=True)  # 409 before the upload is read
        body = await read_capped(request, int(self.limits.max_upload_mb * 1_000_000), self.limits.body_timeout_s)
        image = open_upload(await image_bytes(request, body), self.limits.max_pixels)
        answer = await self.runner.call(self._search_work, image, k, threshold, force)
        return {**answer, "time_ms": round((time.perf_counter() - start) * 1000, 1)}

    def list_gallery(self, request: Request) -> dict:
        """The enrolled identities (``name``, ``images``: its vectors), sorted by name, with the totals."""
        check_key(request, self.limits.api_key)
        gallery = self.store.published()
        return {"gallery": gallery.path.name if gallery.path else None, "threshold": gallery.threshold,
                "identities": [{"name": n, "images": c} for n, c in gallery.identities()],
                "vectors": len(gallery), "updated": gallery.updated}

    def _may_change(self, request: Request) -> None:
        check_key(request, self.limits.api_key)
        if not self.limits.api_key and not self.allow_enrol:
            raise HTTPException(403, NO_KEY)
        self.store.published()  # 409 without a gallery

    async def enrol(
        self, request: Request,
        force: bool = Query(False, description="enrol images far from the training images"),
    ) -> dict:
        """Enrol the images (multipart field ``images``, one or more) as the identity ``name`` (a text field):
        a new identity, or more images of one enrolled. The gallery file is saved atomically (made when
        missing). Needs the API key; refused (403) on a server without one unless started with --allow-enrol."""
        self._may_change(request)
        files, texts = await read_form(request, self.limits, MAX_IMAGES)
        name = texts.get("name", "")
        if not name.strip() or len(name) > MAX_NAME:
            raise HTTPException(400, f"give the identity's name (1 to {MAX_NAME} characters) in the field 'name'")
        uploads = files.get("images", [])
        if not uploads or set(files) - {"images"}:
            raise HTTPException(400, "send the identity's images in the field 'images' (one or more)")
        return await self.runner.call(self._enrol_work, name, uploads, force)

    async def remove(self, request: Request, name: str) -> dict:
        """Remove the identity ``name`` and all its images from the gallery (404 when not enrolled). Needs the
        API key; refused (403) on a server without one unless started with --allow-enrol."""
        self._may_change(request)
        return await self.runner.call(self.store.remove, name)

    def router(self) -> APIRouter:
        router = APIRouter(tags=["recognition"])
        busy: dict[int | str, dict[str, Any]] = {409: {"description": "no gallery, or an empty one"}}
        image = {"image": BINARY}
        router.add_api_route("/verify", self.verify, methods=["POST"],
                             openapi_extra=multipart({"a": BINARY, "b": BINARY}, ["a", "b"]))
        router.add_api_route("/search", self.search, methods=["POST"], responses=busy,
                             openapi_extra=multipart(image, ["image"], raw=True))
        router.add_api_route("/gallery", self.list_gallery, methods=["GET"], responses=busy)
        router.add_api_route("/gallery", self.enrol, methods=["POST"], responses=busy,
                             openapi_extra=multipart({"name": {"type": "string"},
                                                      "images": {"type": "array", "items": BINARY}},
                                                     ["name", "images"]))
        router.add_api_route("/gallery/{name:path}", self.remove, methods=["DELETE"],
                             responses={404: {"description": "no such identity"}})
        return router

    def info(self) -> dict[str, Any]:
        """What /info says of recognition: its routes, the gallery, and whether it may be changed."""
        gallery = self.store.current
        return {"routes": list(ROUTES), "threshold": self.model.meta.value("threshold", None),
                "dim": self.model.meta.value("dim", None),
                "gallery": gallery.path.name if gallery is not None and gallery.path else None,
                "identities": len(gallery.names) if gallery is not None else 0,
                "enrol": gallery is not None and bool(self.limits.api_key or self.allow_enrol)}


def add_recognition(app: FastAPI, runner: Runner, limits: Limits, gallery: str | Path | None = None,
                    allow_enrol: bool = False) -> RecognitionRoutes | None:
    """Add the recognition routes to ``app`` when its model is a recognition model (None otherwise);
    CnnkitError for ``gallery`` or ``allow_enrol`` with another model, or a gallery another model made."""
    task = runner.predictor.meta.task
    if task != TASK:
        if gallery or allow_enrol:
            raise CnnkitError(f"--{'gallery' if gallery else 'allow-enrol'}: a {task} model does not search "
                              "galleries; serve a model from `cnnkit train recognize`")
        return None
    routes = RecognitionRoutes(runner, limits, gallery, allow_enrol)
    app.include_router(routes.router())
    return routes

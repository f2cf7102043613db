"""``cnnkit annotate``'s server: the page at / (``annotate.html``) and its JSON routes under /api/.

The server, not the page, holds each image's clicks (and the mask after each, for undo) and saves them as a
draft through the store on every click: closing the page or stopping the server loses nothing (accepted
objects are on disk; a draft comes back, its mask computed again). One lock serialises the routes: one person
annotates, and the clicker and the store are asked one thing at a time. Masks travel as PNGs in base64, white
where the object is and transparent elsewhere, so that the page tints them with the class's colour.

Routes: GET /api/info, GET /api/images, GET /api/image/{i} (the picture, PNG), GET /api/state/{i},
POST /api/click/{i} ({"x", "y", "positive"} in image pixels), POST /api/undo/{i}, POST /api/clear/{i},
POST /api/accept/{i} ({"class"}), POST /api/done/{i}; every POST carries JSON (``{}`` at least), and
on loopback only the loopback names are answered (see ``create_annotate_app``).
"""

from __future__ import annotations

import csv
import io
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from fastapi import Body, FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from PIL import Image
from pydantic import BaseModel, ConfigDict

from cnnkit import __version__
from cnnkit.data.images import open_image, pil_to_array
from cnnkit.errors import CnnkitError
from cnnkit.log import LOGGER
from cnnkit.meta import default_colours
from cnnkit.metrics.clicks import Click
from cnnkit.serve.uploads import png_base64

if TYPE_CHECKING:
    from cnnkit.annotate import AnnotationStore, Clicker

KEPT = 8  # images whose click history (a mask per click) and pixels stay in memory; others come back from drafts


class ClickBody(BaseModel):
    """A click as the page posts it: whole image pixels, and a true boolean (``"yes"`` is no answer)."""

    model_config = ConfigDict(strict=True, extra="forbid")
    x: int
    y: int
    positive: bool = True


@dataclass
class Draft:
    """One image's clicks so far and the mask after each (None: not known, as after a restart)."""

    clicks: list[Click] = field(default_factory=list)
    masks: list[np.ndarray | None] = field(default_factory=list)


def mask_png(mask: np.ndarray) -> str:
    """A bool (H, W) mask as a base64 RGBA PNG: white where True, transparent elsewhere."""
    rgba = np.zeros((*mask.shape, 4), np.uint8)
    rgba[mask] = 255
    return png_base64(Image.fromarray(rgba, "RGBA"))


def read_colours(out: Path, classes: Sequence[str]) -> tuple[dict[str, list[int]], dict[int, str]]:
    """The colour of each class by name, and the class of each segment mask value, from ``out/classes.csv``
    (index,name,r,g,b) when the store has written it, else cnnkit's palette over ``classes``."""
    colours = {name: c for name, c in zip(classes, default_colours(len(classes)))}
    names = {k + 1: name for k, name in enumerate(classes)}
    table = out / "classes.csv"
    if table.is_file():
        with table.open(newline="", encoding="utf-8") as f:
            for row in csv.DictReader(f):
                try:
                    index, rgb = int(row["index"]), [int(row[c]) for c in "rgb"]
                except (KeyError, TypeError, ValueError):
                    continue  # a row the page cannot colour: the palette's colour stays
                names[index] = row["name"]
                colours[row["name"]] = rgb
    return colours, names


class Annotator:
    """What the page asks of ``store`` (an ``AnnotationStore``) and ``clicker`` (a ``Clicker``), with each
    image's clicks. ``classes``: the classes the page offers (those of ``store`` when it has them)."""

    def __init__(self, store: AnnotationStore, clicker: Clicker, classes: Sequence[str]) -> None:
        self.store, self.clicker = store, clicker
        self.classes = [c for c in getattr(store, "classes", classes) if c != "background"] or list(classes)
        self.lock = threading.Lock()
        self.seconds: float | None = None  # the last click's time in the clicker
        self._status: list[dict] | None = None  # the store's, read again after what changes it
        self._drafts: OrderedDict[int, Draft] = OrderedDict()
        self._pixels: OrderedDict[int, np.ndarray] = OrderedDict()

    def check(self, i: int) -> Path:
        """The path of image ``i``; 404 when there is none."""
        if not 0 <= i < len(self.store.images):
            raise HTTPException(404, f"image {i}: there are images 0 to {len(self.store.images) - 1}")
        return self.store.images[i]

    def pixels(self, i: int) -> np.ndarray:
        """Image ``i`` as (H, W, 3) uint8, as the data readers see it (EXIF orientation applied)."""
        if i not in self._pixels:
            path = self.check(i)
            try:
                self._pixels[i] = pil_to_array(open_image(path), 3)
            except CnnkitError as e:  # its hints name other commands' flags (--skip-bad): this page has none
                reason = str(e).split(";")[0].removeprefix(f"{path}: ").removeprefix(f"{path.name}: ")
                raise CnnkitError(f"{path.name}: cannot be shown ({reason}); replace or remove it in "
                                  f"{path.parent} (the other images are not affected)") from None
            while len(self._pixels) > 2:
                self._pixels.popitem(last=False)
        return self._pixels[i]

    def draft(self, i: int) -> Draft:
        """Image ``i``'s clicks: in memory, or the store's draft (its mask computed again)."""
        self.check(i)
        if i not in self._drafts:
            clicks = list(self.store.draft(i))
            self._drafts[i] = Draft(clicks, [None] * len(clicks))
            while len(self._drafts) > KEPT:
                self._drafts.popitem(last=False)
        self._drafts.move_to_end(i)
        return self._drafts[i]

    def mask(self, i: int) -> np.ndarray | None:
        """The mask of image ``i``'s clicks (None without clicks), computed when not known."""
        draft = self.draft(i)
        if not draft.clicks:
            return None
        if draft.masks[-1] is None:
            draft.masks[-1] = self._segment(i, draft.clicks, None)
        return draft.masks[-1]

    def _segment(self, i: int, clicks: list[Click], prev: np.ndarray | None) -> np.ndarray:
        image = self.pixels(i)
        start = time.perf_counter()
        mask = np.asarray(self.clicker(image, clicks, prev), bool)
        self.seconds = time.perf_counter() - start
        if mask.shape != image.shape[:2]:
            raise CnnkitError(f"the {self.clicker.name} clicker answered a {mask.shape} mask for a "
                              f"{image.shape[:2]} image; it must answer one of the image's size")
        return mask

    def click(self, i: int, click: Click) -> None:
        """Add ``click`` (in image pixels) to image ``i``'s and segment again; 422 outside the image."""
        height, width = self.pixels(i).shape[:2]
        if not (0 <= click.y < height and 0 <= click.x < width):
            raise HTTPException(422, f"click at x={click.x}, y={click.y}: outside the {width}x{height} image")
        draft = self.draft(i)
        prev = self.mask(i)
        mask = self._segment(i, [*draft.clicks, click], prev)
        draft.clicks.append(click)
        draft.masks.append(mask)
        self.store.save_draft(i, draft.clicks)

    def undo(self, i: int) -> str:
        """Undo image ``i``'s last click, or without clicks its last accepted object: what was undone
        ("click", "object" or "" for nothing)."""
        draft = self.draft(i)
        if draft.clicks:
            draft.clicks.pop()
            draft.masks.pop()
            self.store.save_draft(i, draft.clicks)
            return "click"
        self._status = None
        return "object" if self.store.undo(i) else ""

    def clear(self, i: int) -> None:
        """Drop image ``i``'s clicks."""
        draft = self.draft(i)
        draft.clicks.clear()
        draft.masks.clear()
        self.store.save_draft(i, [])

    def accept(self, i: int, name: str) -> Path:
        """Save the mask of image ``i``'s clicks as an object of class ``name``; its clicks start again.
        409 without a mask, 422 for a class not offered."""
        if name not in self.classes:
            raise HTTPException(422, f"class {name!r}: not one of {self.classes}")
        mask = self.mask(i)
        if mask is None or not mask.any():
            raise HTTPException(409, "nothing to accept: click on an object first (left click: on it)")
        path = self.store.accept(i, mask, name)
        self._status = None
        self.clear(i)
        return path

    def done(self, i: int) -> None:
        """Mark image ``i`` finished (its mask is written, all background when it has no object)."""
        self.store.mark_done(i)
        self._status = None

    def status(self) -> list[dict]:
        """The store's ``status()`` (per image: index, name, objects, done), read once per change."""
        if self._status is None:
            self._status = list(self.store.status())
        return self._status

    def state(self, i: int) -> dict[str, Any]:
        """What the page shows of image ``i``: its size, accepted objects (and a picture of them in their
        classes' colours), clicks, mask, and the progress over all images."""
        path, draft = self.check(i), self.draft(i)
        mask = self.mask(i)
        height, width = self.pixels(i).shape[:2]
        objects = list(self.store.objects(i))
        status = self.status()
        return {"index": i, "name": path.name, "width": width, "height": height, "objects": objects,
                "labels": self._labels_png(i, objects) if objects else None,
                "clicks": [{"x": c.x, "y": c.y, "positive": c.positive} for c in draft.clicks],
                "mask": mask_png(mask) if mask is not None else None,
                "area": int(mask.sum()) if mask is not None else 0,
                "done": bool(status[i].get("done")), "images": len(status),
                "images_done": sum(bool(s.get("done")) for s in status), "seconds": self.seconds,
                "clicker": self.clicker.name}

    def _labels_png(self, i: int, objects: list[dict]) -> str:
        """Image ``i``'s accepted objects in their classes' colours, half transparent, as a base64 PNG."""
        colours, names = read_colours(Path(self.store.out), self.classes)
        labels = np.asarray(self.store.label_map(i))
        rgba = np.zeros((*labels.shape, 4), np.uint8)
        if getattr(self.store, "layout", "segment") == "instance":  # ids 1..M: the objects still visible, in order
            names = {k: o["class"] for k, o in enumerate([o for o in objects if o.get("area", 1) > 0], 1)}
        for value in np.unique(labels):
            if value <= 0:
                continue
            name = names.get(int(value), "")
            rgba[labels == value] = [*colours.get(name, [255, 255, 255]), 140]
        return png_base64(Image.fromarray(rgba, "RGBA"))

    def info(self) -> dict[str, Any]:
        colours, _ = read_colours(Path(self.store.out), self.classes)
        return {"images": len(self.store.images), "classes": self.classes,
                "colours": [colours.get(c, [255, 255, 255]) for c in self.classes], "clicker": self.clicker.name,
                "layout": getattr(self.store, "layout", "segment"), "out": str(self.store.out),
                "cnnkit_version": __version__}


LOCAL = ("127.0.0.1", "localhost", "[::1]")  # the names a page served on loopback is reached by


def _hostname(header: str) -> str:
    """'localhost:8010' -> 'localhost', '[::1]:8010' -> '[::1]'."""
    return header if header.endswith("]") or ":" not in header else header.rsplit(":", 1)[0]


def create_annotate_app(store: AnnotationStore, clicker: Clicker, classes: Sequence[str] = ("object",),
                        hosts: Sequence[str] | None = LOCAL) -> FastAPI:
    """The annotation page and its routes over ``store`` and ``clicker`` (see the module's docstring).
    Store and clicker errors (CnnkitError) answer 400 with their message. ``hosts``: the Host names
    answered (None: any), so that another site's page cannot reach the server through a name of its own
    (DNS rebinding); POSTs must carry JSON, which a browser sends across sites only when the server allows
    it (CORS, never here): another site's page cannot undo or accept objects (415 otherwise)."""
    app = FastAPI(title="cnnkit annotate", version=__version__, docs_url=None, redoc_url=None, openapi_url=None)
    work = Annotator(store, clicker, classes)

    add_guards(app, hosts)
    page = resources.files("cnnkit.serve").joinpath("annotate.html").read_text(encoding="utf-8")

    def locked(i: int, action: Any) -> dict[str, Any]:
        with work.lock:
            try:
                work.check(i)
                extra = action() or {}
                return {**work.state(i), **extra}
            except CnnkitError as e:
                raise HTTPException(400, str(e)) from None

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def index() -> str:
        return page

    @app.get("/api/info")
    def get_info() -> dict:
        return work.info()

    @app.get("/api/images")
    def images() -> list:
        with work.lock:
            return work.status()

    @app.get("/api/image/{i}")
    def picture(i: int) -> Response:
        """Image ``i`` as a PNG, decoded as the store reads it (any format Pillow reads, EXIF applied)."""
        with work.lock:
            try:
                pixels = work.pixels(i)
            except CnnkitError as e:
                raise HTTPException(400, str(e)) from None
        buffer = io.BytesIO()
        Image.fromarray(pixels).save(buffer, format="PNG", compress_level=1)  # fast: it stays on this machine
        return Response(buffer.getvalue(), media_type="image/png", headers={"Cache-Control": "no-store"})

    @app.get("/api/state/{i}")
    def state(i: int) -> dict:
        return locked(i, lambda: None)

    add_edits(app, work, locked)

    app.state.annotator = work
    return app


def add_guards(app: FastAPI, hosts: Sequence[str] | None) -> None:
    """The Host check (DNS rebinding), JSON-only POSTs (no cross-site form can post) and one-line 422s."""
    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        # one line the page can show; FastAPI's own answer echoes the input, and NaN cannot be written as JSON
        where = "; ".join(f"{'.'.join(str(p) for p in e['loc'][1:]) or 'body'}: {e['msg']}" for e in exc.errors())
        return JSONResponse({"detail": f"{where} (clicks are whole pixel numbers x, y and positive true/false)"},
                            status_code=422)

    @app.middleware("http")
    async def guard(request: Request, call_next: Any) -> Any:
        if hosts is not None and _hostname(request.headers.get("host", "")) not in hosts:
            return JSONResponse({"detail": "unknown Host header: open the page at the address it was served on"},
                                status_code=400)
        kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if request.method == "POST" and kind != "application/json":
            return JSONResponse({"detail": "POST a JSON body (Content-Type: application/json)"}, status_code=415)
        return await call_next(request)


def add_edits(app: FastAPI, work: Annotator, locked: Any) -> None:
    """The routes that change an image's state: each answers the image's state after it (``locked``)."""
    @app.post("/api/click/{i}")
    def click(i: int, body: ClickBody) -> dict:
        return locked(i, lambda: work.click(i, Click(y=body.y, x=body.x, positive=body.positive)))

    @app.post("/api/undo/{i}")
    def undo(i: int) -> dict:
        return locked(i, lambda: {"undone": work.undo(i)})

    @app.post("/api/clear/{i}")
    def clear(i: int) -> dict:
        return locked(i, lambda: work.clear(i))

    @app.post("/api/accept/{i}")
    def accept(i: int, name: str = Body(..., alias="class", embed=True)) -> dict:
        return locked(i, lambda: {"saved": str(work.accept(i, name))})

    @app.post("/api/done/{i}")
    def done(i: int) -> dict:
        return locked(i, lambda: work.done(i))


def serve_annotate(store: AnnotationStore, clicker: Clicker, classes: Sequence[str] = ("object",),
                   host: str = "127.0.0.1", port: int = 8010, browser: bool = True) -> None:
    """Run the annotation page on uvicorn until interrupted; ``browser``: open it in the default web browser
    once the server listens."""
    import uvicorn

    local = host in ("127.0.0.1", "localhost", "::1")
    app = create_annotate_app(store, clicker, classes, LOCAL if local else None)
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else f"[{host}]" if ":" in host else host
    url = f"http://{shown}:{port}/"
    if not local:
        LOGGER.warning("annotating on %s: anyone who can reach this machine can see the images and change the "
                       "masks", host)
    LOGGER.info("cnnkit annotate: %s (%d images, clicker: %s; masks into %s); Ctrl+C to stop", url,
                len(store.images), clicker.name, store.out)
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning"))
    if browser:
        threading.Thread(target=_open_when_up, args=(server, url), daemon=True).start()
    server.run()


def _open_when_up(server: Any, url: str, wait_s: float = 30.0) -> None:
    """Open ``url`` in the default browser once ``server`` has started (never if it has not in ``wait_s``)."""
    import webbrowser

    deadline = time.monotonic() + wait_s
    while not server.started:
        if time.monotonic() > deadline or server.should_exit:
            return
        time.sleep(0.05)
    webbrowser.open(url)

"""The data set an annotation session writes, object by object, in a layout ``cnnkit train`` reads.

``out/images/`` (each annotated image, its original bytes, copied on its first accepted object),
``out/masks/<stem>.png`` and ``out/classes.csv`` (``index,name,r,g,b``; 0 is the background):
- layout "segment": a palette PNG of class indices (0 background), as the segment task's readers take it;
- layout "instance": an id map (0 background, 1..N one per object; 8-bit, 16-bit past 255 objects) with
  ``masks/<stem>.json`` ({id: class name}) and ``out/classes.txt``, the instance-map format of
  ``cnnkit.data.instance_formats``.
Objects overlap as painted: a later object paints over the earlier ones where they overlap (an earlier object
hidden entirely leaves the instance map, and comes back when the later one is undone).
The bookkeeping (each object's own mask, so undo works after a restart; in-progress clicks; done flags) lives
in ``out/.annotate/``, hidden from every reader. Every file is written atomically (a crash leaves the old
file or the new one). Reopening the same ``out`` continues where it stopped; an image since removed from
the source keeps what was written for it.
"""

from __future__ import annotations

import copy
import csv
import io
import json
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from cnnkit.annotate.inputs import ClickLike, as_clicks
from cnnkit.data.images import UNREADABLE, upright_size
from cnnkit.data.masks import default_colours
from cnnkit.data.walk import list_images
from cnnkit.errors import CnnkitError
from cnnkit.files import atomic_write_bytes, json_bytes
from cnnkit.metrics.clicks import Click

STATE_DIR = ".annotate"  # hidden: the data readers skip names starting with a dot
LAYOUTS = ("segment", "instance")
PAINTED_KEPT = 4  # images whose painted object map stays in memory
MAX_SEGMENT_CLASSES = 254  # uint8 class indices, 255 being the ignore value of the segment readers


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def source_images(source: Path) -> list[Path]:
    """The images directly in ``source``, sorted; CnnkitError for a missing folder, no images, or two
    files of one stem (their masks would share a name)."""
    if not source.is_dir():
        raise CnnkitError(f"{source}: not a folder; pass the folder of images to annotate")
    images = sorted(list_images(source, say=False)[0])
    if not images:
        raise CnnkitError(f"{source}: no images; put the images (PNG, JPEG, ...) to annotate in this folder")
    stems: dict[str, Path] = {}
    for path in images:
        if path.stem in stems:
            raise CnnkitError(f"{stems[path.stem]} and {path}: two images of one stem '{path.stem}' would share "
                              "a mask file; rename one")
        stems[path.stem] = path
    return images


def check_classes(classes: Sequence[str], layout: str) -> list[str]:
    names = [str(c).strip() for c in classes if str(c).strip().lower() != "background"]  # 0 is the background
    if not names:
        raise CnnkitError("no classes: name the classes to annotate (--classes cell or --classes car,person)")
    if len(set(names)) != len(names) or any(not n or "," in n for n in names):
        raise CnnkitError(f"classes {names}: give distinct, non-empty names without commas")
    if layout == "segment" and len(names) > MAX_SEGMENT_CLASSES:
        raise CnnkitError(f"{len(names)} classes: the segment layout holds {MAX_SEGMENT_CLASSES} at most")
    return names


class AnnotationStore:
    """Accepted objects of the images in ``source``, written as a data set into ``out`` (see the module
    docstring). ``classes``: the class names (no background; empty on reopening keeps the stored ones, more
    may be added after them). ``layout``: "segment" or "instance". Images are indexed as ``.images`` lists
    them. Thread-safe (one lock). CnnkitError for a folder that cannot be written, naming it and the fix."""

    def __init__(self, source: str | Path, out: str | Path, classes: Sequence[str] = (), layout: str = "segment"):
        self.source, self.out = Path(source), Path(out)
        if layout not in LAYOUTS:
            raise CnnkitError(f"layout {layout!r}: choose segment (class masks) or instance (one id per object)")
        if self.out.resolve() == self.source.resolve():
            raise CnnkitError(f"{self.out}: the output is the source folder; pass --out another folder")
        self.images: list[Path] = source_images(self.source)
        self.state_dir = self.out / STATE_DIR
        self._lock = threading.RLock()
        self._states: dict[str, dict[str, Any]] = {}  # by image stem: the state files, which only this writes
        self._painted: dict[tuple, np.ndarray] = {}  # (stem, object files) -> _paint's map
        self.layout = layout
        self.classes: list[str] = self._open(list(classes))

    # ------------------------------------------------------------------ opening and files
    def _open(self, classes: list[str]) -> list[str]:
        stored = self._read_json(self.state_dir / "store.json")
        if stored:
            old = list(stored.get("classes", []))
            if stored.get("layout") != self.layout:
                raise CnnkitError(f"{self.out}: annotated in the {stored.get('layout')} layout; pass --layout "
                                  f"{stored.get('layout')}, or another --out for a new data set")
            if classes and check_classes(classes, self.layout)[:len(old)] != old:
                raise CnnkitError(f"{self.out}: its classes are {','.join(old)}; keep them first and in that "
                                  "order (new ones may follow), or pass another --out")
            classes = classes or old
        elif (self.out / "masks").is_dir() and any((self.out / "masks").iterdir()):
            raise CnnkitError(f"{self.out}: holds masks/ written by something else; pass an empty or new --out")
        names = check_classes(classes, self.layout)
        self._write(self.state_dir / "store.json",
                    json_bytes({"version": 1, "layout": self.layout, "classes": names,
                                "source": str(self.source.resolve())}, indent=1))
        self._write(self.out / "classes.csv", classes_csv(names))
        if self.layout == "instance":  # the instance-map reader's class names
            self._write(self.out / "classes.txt", "".join(f"{n}\n" for n in names).encode())
        return names

    def _write(self, path: Path, data: bytes) -> None:
        try:
            atomic_write_bytes(path, data)
        except OSError as e:
            raise CnnkitError(f"{self.out}: cannot write the annotations there ({e.strerror or e}); make the folder "
                              "writable, or pass --out a folder you can write to") from None

    def _remove(self, path: Path) -> None:
        try:
            path.unlink(missing_ok=True)
        except OSError as e:
            raise CnnkitError(f"{path}: cannot remove it ({e.strerror or e}); make {self.out} writable") from None

    @staticmethod
    def _read_json(path: Path) -> dict[str, Any]:
        if not path.is_file():
            return {}
        try:
            data = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, ValueError) as e:
            raise CnnkitError(f"{path}: unreadable annotation state ({e}); restore it, or remove it to start this "
                              "image again") from None
        return data if isinstance(data, dict) else {}

    def _path(self, i: int) -> Path:
        if isinstance(i, bool) or not isinstance(i, (int, np.integer)) or not 0 <= i < len(self.images):
            raise CnnkitError(f"image index {i!r}: there are {len(self.images)} images (0..{len(self.images) - 1})")
        return self.images[int(i)]

    def _state_path(self, i: int) -> Path:
        return self.state_dir / "images" / self._path(i).stem / "state.json"

    def _state(self, i: int) -> dict[str, Any]:
        """Image ``i``'s bookkeeping, a copy the caller may change and save."""
        stem = self._path(i).stem
        if stem not in self._states:
            state = self._read_json(self._state_path(i))
            self._states[stem] = {"name": self._path(i).name, "objects": list(state.get("objects", [])),
                                  "done": bool(state.get("done", False)), "draft": list(state.get("draft", []))}
        return copy.deepcopy(self._states[stem])

    def _save_state(self, i: int, state: dict[str, Any]) -> None:
        self._write(self._state_path(i), json_bytes(state, indent=1))
        self._states[self._path(i).stem] = copy.deepcopy(state)

    def _shape(self, i: int) -> tuple[int, int]:
        """``(H, W)`` of image ``i`` upright, as cnnkit's readers (and the page) see it; from the file's header."""
        path = self._path(i)
        try:
            with Image.open(path) as im:
                width, height = upright_size(im)
        except UNREADABLE as e:
            raise CnnkitError(f"{path}: unreadable image ({e}); re-export it, or move it out of the folder") from None
        return height, width

    def mask_path(self, i: int) -> Path:
        """Where the mask of image ``i`` is written (it exists once an object is accepted or it is done)."""
        return self.out / "masks" / f"{self._path(i).stem}.png"

    # ------------------------------------------------------------------ reading
    def status(self) -> list[dict[str, Any]]:
        """Per image: ``{"index", "name", "objects" (accepted, count), "done"}``."""
        with self._lock:
            out = []
            for i, path in enumerate(self.images):
                state = self._state(i)
                out.append({"index": i, "name": path.name, "objects": len(state["objects"]), "done": state["done"]})
            return out

    def objects(self, i: int) -> list[dict[str, Any]]:
        """The accepted objects of image ``i`` in order: ``{"class", "area"}``, area in px as written (what later
        objects left visible)."""
        with self._lock:
            state = self._state(i)
            painted = self._paint(i, state)
            return [{"class": o["class"], "area": int(np.count_nonzero(painted == k))}
                    for k, o in enumerate(state["objects"], 1)]

    def label_map(self, i: int) -> np.ndarray:
        """``(H, W)`` as written: class indices (segment; 0 background) or object ids 1..N (instance; uint16)."""
        with self._lock:
            state = self._state(i)
            painted = self._paint(i, state)
            if self.layout == "instance":
                return renumber(painted)[0].astype(np.uint16)
            lut = np.array([0] + [self.classes.index(o["class"]) + 1 for o in state["objects"]], np.uint8)
            return lut[painted]

    def draft(self, i: int) -> list[Click]:
        """The clicks of the object in progress on image ``i`` (saved by :meth:`save_draft`), after a restart too."""
        with self._lock:
            return [Click(y=int(y), x=int(x), positive=bool(p)) for y, x, p in self._state(i)["draft"]]

    def _paint(self, i: int, state: dict[str, Any]) -> np.ndarray:
        """``(H, W)`` int32 (read-only): k where the k-th accepted object (1-based) is visible, later over earlier.
        Kept for the last few images until their objects change: the page asks for it after every click, and an
        image of hundreds of nuclei would decode hundreds of masks each time."""
        key = (self._path(i).stem, tuple(o["file"] for o in state["objects"]))
        if key in self._painted:
            return self._painted[key]
        painted = self._paint_files(i, state)
        painted.flags.writeable = False
        self._painted[key] = painted
        while len(self._painted) > PAINTED_KEPT:
            self._painted.pop(next(iter(self._painted)))
        return painted

    def _paint_files(self, i: int, state: dict[str, Any]) -> np.ndarray:
        shape = self._shape(i)
        painted = np.zeros(shape, np.int32)
        folder = self._state_path(i).parent
        for k, obj in enumerate(state["objects"], 1):
            try:
                with Image.open(folder / obj["file"]) as im:
                    mask = np.asarray(im.convert("L")) > 0
            except OSError as e:
                raise CnnkitError(f"{folder / obj['file']}: an accepted object's mask is unreadable ({e}); restore "
                                  "it, or undo that object") from None
            if mask.shape == shape:
                painted[mask] = k
        return painted

    # ------------------------------------------------------------------ writing
    def accept(self, i: int, mask: np.ndarray, class_name: str) -> Path:
        """Add an object (``mask`` bool ``(H, W)`` at the image's size) of class ``class_name`` to image ``i``,
        rewrite its mask file and return its path; the image is copied into ``out/images`` the first time; the
        draft clicks are cleared. CnnkitError for an empty mask, another size, or an unknown class."""
        arr = np.asarray(mask)
        shape = self._shape(i)
        if arr.shape != shape:
            raise CnnkitError(f"mask of shape {list(arr.shape)}: image {self._path(i).name} is {list(shape)} (H, W); "
                              "pass a mask at the image's size")
        arr = arr.astype(bool)
        if not arr.any():
            raise CnnkitError(f"{self._path(i).name}: an empty mask, no object to accept; click on the object first")
        if class_name not in self.classes:
            raise CnnkitError(f"class {class_name!r}: not one of {', '.join(self.classes)}; pick one of those")
        with self._lock:
            state = self._state(i)
            taken = {o["file"] for o in state["objects"]}
            n = len(state["objects"]) + 1
            while f"{n:04d}.png" in taken or (self._state_path(i).parent / f"{n:04d}.png").exists():
                n += 1  # a file left by an undo that crashed before its state was saved is never reused
            name = f"{n:04d}.png"
            self._write(self._state_path(i).parent / name, png_bytes(Image.fromarray(arr)))
            draft = state["draft"]
            state["objects"].append({"class": class_name, "file": name})
            state["draft"] = []
            try:
                self._write_data(i, state)
                self._save_state(i, state)
            except CnnkitError:  # nothing half-written stays: the data set as it was before this object
                state["objects"].pop()
                state["draft"] = draft
                self._write_data(i, state, failing=True)
                raise
            return self.mask_path(i)

    def undo(self, i: int) -> bool:
        """Remove the last accepted object of image ``i`` (False when there is none) and rewrite its mask;
        an image left with no object and not done leaves the data set."""
        with self._lock:
            state = self._state(i)
            if not state["objects"]:
                return False
            last = state["objects"].pop()
            self._write_data(i, state)
            self._save_state(i, state)
            self._remove(self._state_path(i).parent / last["file"])
            return True

    def mark_done(self, i: int, done: bool = True) -> None:
        """Mark image ``i`` finished (or not). A done image without objects is written as all background."""
        with self._lock:
            state = self._state(i)
            state["done"] = bool(done)
            self._write_data(i, state)
            self._save_state(i, state)

    def save_draft(self, i: int, clicks: Sequence[ClickLike]) -> None:
        """Keep the clicks of the object in progress on image ``i`` (Clicks or ``(x, y, positive)``)."""
        chosen = as_clicks(clicks, self._shape(i))
        with self._lock:
            state = self._state(i)
            state["draft"] = [[c.y, c.x, c.positive] for c in chosen]
            self._save_state(i, state)

    def _write_data(self, i: int, state: dict[str, Any], failing: bool = False) -> None:
        """The image's files in the data set, as ``state`` says: written when it has objects or is done,
        removed (mask, class table, copied image) otherwise. ``failing``: putting them back after a failed
        write, as far as the folder allows (the first error is the one the caller reports)."""
        path, mask_file = self._path(i), self.mask_path(i)
        copy, table = self.out / "images" / path.name, mask_file.with_suffix(".json")
        if not state["objects"] and not state["done"]:
            for stale in (mask_file, table, copy):
                try:
                    self._remove(stale)
                except (CnnkitError, OSError):
                    if not failing:
                        raise
            return
        if failing:
            try:
                self._write_data(i, state)
            except CnnkitError:
                pass
            return
        if not copy.is_file():
            try:
                data = path.read_bytes()
            except OSError as e:
                raise CnnkitError(f"{path}: cannot read the image ({e.strerror or e}); check the source") from None
            self._write(copy, data)
        painted = self._paint(i, state)
        if self.layout == "segment":
            lut = np.array([0] + [self.classes.index(o["class"]) + 1 for o in state["objects"]], np.uint8)
            classes = lut[painted]
            picture = Image.frombytes("P", (classes.shape[1], classes.shape[0]), classes.tobytes())
            picture.putpalette([v for c in default_colours(256) for v in c])
            self._write(mask_file, png_bytes(picture))
            return
        ids, kept = renumber(painted)
        picture = Image.fromarray(ids.astype(np.uint8 if len(kept) < 256 else np.uint16))
        self._write(mask_file, png_bytes(picture))
        self._write(table, json_bytes({str(new): state["objects"][old - 1]["class"] for new, old in kept.items()},
                                      indent=1))


def renumber(painted: np.ndarray) -> tuple[np.ndarray, dict[int, int]]:
    """Object ids 1..M for the M objects still visible, in acceptance order, and {new id: old id}."""
    visible = [int(k) for k in np.unique(painted) if k > 0]
    lut = np.zeros(int(painted.max()) + 1, np.int32)
    lut[visible] = np.arange(1, len(visible) + 1)
    return lut[painted], {new: old for new, old in enumerate(visible, 1)}


def classes_csv(names: list[str]) -> bytes:
    """``index,name,r,g,b``: 0 the background, then the classes in order (the masks' colours)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["index", "name", "r", "g", "b"])
    colours = default_colours(len(names) + 1)
    for k, name in enumerate(["background", *names]):
        writer.writerow([k, name, *colours[k]])
    return buffer.getvalue().encode()


def hold_folder(out: Path) -> Any:
    """An exclusive lock on ``out`` for as long as the returned file stays open (the caller keeps it), so that a
    second ``cnnkit annotate`` on the same data set is refused instead of writing over the first one's objects.
    CnnkitError when another process holds it; no lock where the system has no ``fcntl`` (Windows)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows: one annotator per folder is the user's care
        return None
    folder = Path(out) / STATE_DIR
    try:
        folder.mkdir(parents=True, exist_ok=True)
        handle = open(folder / "lock", "a+b")  # noqa: SIM115 - held open on purpose
    except OSError as e:
        raise CnnkitError(f"{out}: cannot write the annotations there ({e.strerror or e}); make the folder "
                          "writable or pass another --out") from None
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.close()
        raise CnnkitError(f"{out}: another cnnkit annotate is writing this data set; close it first (two would "
                          "overwrite each other's objects), or pass another --out") from None
    return handle

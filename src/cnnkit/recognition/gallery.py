"""A persistent gallery of enrolled identities: embeddings by name, in one ``.npz`` file (torch-free, no pickle).

The file holds five arrays, read with ``allow_pickle=False``:

- ``vectors`` (N, D) float32: the embeddings, L2-normalised (cosine distance is then ``1 - a . b``)
- ``identity`` (N,) int32: each vector's index into ``names``
- ``names`` (M,) unicode: the enrolled identities, in the order they were first added
- ``sources`` (N,) unicode: where each vector came from (an image's file name)
- ``header``: a 0-d unicode array of JSON: ``{"format": "cnnkit-gallery", "version": 1, "fingerprint": str,
  "model": str, "dim": int, "threshold": float | null, "created": ISO time, "updated": ISO time}``; the
  fingerprint is the model's that made the embeddings, the threshold a cosine distance (a match is at most it).
"""

from __future__ import annotations

import io
import json
import shlex
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from cnnkit.errors import CnnkitError, did_you_mean
from cnnkit.files import atomic_write_bytes
from cnnkit.recognition.gallery_file import FORMAT, VERSION, is_number, read_gallery
from cnnkit.recognition.index import VectorIndex, nearest_identities, normalise


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _check_threshold(threshold: float | None, where: str) -> float | None:
    if threshold is None:
        return None
    if not is_number(threshold) or not 0.0 <= float(threshold) <= 2.0:  # NaN fails the comparison too
        raise CnnkitError(f"{where}: threshold {threshold!r} is not a cosine distance; give a number from 0 to 2")
    return float(threshold)


def _unicode(strings: list[str]) -> np.ndarray:
    return np.array(strings, dtype=str) if strings else np.zeros(0, dtype="<U1")


class Gallery:
    """Enrolled identities, each with one or more embeddings of one model; searched by cosine distance.

    Make one with ``Gallery.new``, ``Gallery.load`` or ``Gallery.open_or_new``; ``path`` is the file it was
    loaded from or last saved to (None before), named in error messages. ``use_faiss`` picks the search's
    backend as ``VectorIndex`` does (None: numpy, measured faster than faiss here); both give the same results.
    """

    def __init__(self, header: dict[str, Any], vectors: np.ndarray, identity: np.ndarray, names: list[str],
                 sources: list[str], path: str | Path | None = None) -> None:
        self._header = header
        self._vectors = vectors  # (N, D) float32, unit rows
        self._identity = identity  # (N,) int32 into _names
        self._names = names
        self._sources = sources
        self.path = Path(path) if path is not None else None
        self.use_faiss: bool | None = None
        self._index: VectorIndex | None = None  # built on the first search after a change
        self._index_for: bool | None = None  # the use_faiss it was built with

    @classmethod
    def new(cls, fingerprint: str, model: str, dim: int, threshold: float | None) -> Gallery:
        """An empty gallery for embeddings of ``dim`` numbers from the model with ``fingerprint`` (``model``:
        its name, for messages); ``threshold``: the cosine distance (0 to 2) at most which a search matches,
        or None for searches that rank only."""
        if not isinstance(fingerprint, str) or not fingerprint:
            raise ValueError(f"a gallery needs the model's fingerprint, not {fingerprint!r}")
        if not is_number(dim) or int(dim) != dim or dim < 1:
            raise ValueError(f"dim must be a positive whole number, not {dim!r}")
        now = _now()
        header = {"format": FORMAT, "version": VERSION, "fingerprint": fingerprint, "model": str(model),
                  "dim": int(dim), "threshold": _check_threshold(threshold, "the gallery"),
                  "created": now, "updated": now}
        return cls(header, np.zeros((0, int(dim)), np.float32), np.zeros(0, np.int32), [], [])

    @classmethod
    def load(cls, path: str | Path) -> Gallery:
        """Read the gallery file at ``path``; CnnkitError naming it when it is missing, not a gallery, damaged,
        of another version or holding fields this cnnkit does not know."""
        path = Path(path)
        if not path.exists():
            raise CnnkitError(f"{path}: no such gallery; create it with `cnnkit gallery add "
                              f"{shlex.quote(str(path))} --weights W --name NAME IMAGES...`")
        if path.is_dir():
            raise CnnkitError(f"{path}: a folder, not a gallery file; give the gallery's .npz file")
        header, vectors, identity, names, sources = read_gallery(path)
        return cls(header, vectors, identity, names, sources, path)

    @classmethod
    def open_or_new(cls, path: str | Path, fingerprint: str, model: str, dim: int,
                    threshold: float | None) -> Gallery:
        """The gallery at ``path`` when it exists (which must have been made by the model with ``fingerprint``;
        its own threshold is kept), else a new empty one that ``save()`` writes to ``path``."""
        path = Path(path)
        if not path.exists():
            gallery = cls.new(fingerprint, model, dim, threshold)
            gallery.path = path
            return gallery
        gallery = cls.load(path)
        gallery.check_model(fingerprint, model, path)
        if gallery.dim != dim:
            raise CnnkitError(f"{path}: holds embeddings of {gallery.dim} numbers, but {model} makes {dim}; "
                              f"build a new gallery with this model")
        return gallery

    def save(self, path: str | Path | None = None) -> Path:
        """Write the gallery to ``path`` (default: ``self.path``) atomically, as given (no suffix is added);
        returns the path. CnnkitError naming it when it cannot be written."""
        target = Path(path) if path is not None else self.path
        if target is None:
            raise ValueError("save() needs a path: this gallery was never loaded or saved")
        buf = io.BytesIO()  # savez to a file name would append .npz to a name without it
        np.savez(buf, vectors=self._vectors, identity=self._identity, names=_unicode(self._names),
                 sources=_unicode(self._sources), header=np.array(json.dumps(self._header, allow_nan=False)))
        try:
            atomic_write_bytes(target, buf.getvalue())
        except OSError as e:
            raise CnnkitError(f"{target}: cannot write the gallery ({e.strerror or e}); check that its folder is "
                              f"writable, or give another path") from None
        self.path = target
        return target

    def check_model(self, fingerprint: str, model: str, path: str | Path) -> None:
        """CnnkitError naming ``path`` unless the gallery's embeddings were made by the model with
        ``fingerprint`` (``model``: that model's name, for the message): other models' embeddings do not
        compare."""
        if fingerprint == self.fingerprint:
            return
        raise CnnkitError(f"{path}: made by another model ({self.model}, weights {self.fingerprint[:12]}), not "
                          f"this one ({model}, weights {fingerprint[:12]}); a checkpoint of another epoch or run is "
                          f"another model: search it with the one that built it, or build a new gallery with this one")

    @property
    def fingerprint(self) -> str:
        return str(self._header["fingerprint"])

    @property
    def model(self) -> str:
        return str(self._header["model"])

    @property
    def dim(self) -> int:
        return int(self._header["dim"])

    @property
    def created(self) -> str:
        return str(self._header["created"])

    @property
    def updated(self) -> str:
        return str(self._header["updated"])

    @property
    def threshold(self) -> float | None:
        """The cosine distance (0 to 2) at most which a search matches, or None."""
        value = self._header["threshold"]
        return None if value is None else float(value)

    @threshold.setter
    def threshold(self, value: float | None) -> None:
        self._header["threshold"] = _check_threshold(value, self._label())
        self._header["updated"] = _now()

    def __len__(self) -> int:
        """The number of enrolled vectors (not identities)."""
        return len(self._vectors)

    def __repr__(self) -> str:
        return f"Gallery({self._label()}: {len(self._names)} identities, {len(self)} vectors, {self.model})"

    @property
    def names(self) -> list[str]:
        """The enrolled identities, in the order they were first added."""
        return list(self._names)

    def identities(self) -> list[tuple[str, int]]:
        """(name, number of vectors) of each enrolled identity, sorted by name."""
        counts = np.bincount(self._identity, minlength=len(self._names))
        return sorted((name, int(c)) for name, c in zip(self._names, counts))

    def add(self, name: str, vectors: np.ndarray, sources: list[str]) -> int:
        """Enrol ``vectors`` (n, D) (or one (D,)) as ``name``: a new identity, or more vectors for one enrolled;
        ``sources``: where each came from (n file names). Returns the number of vectors ``name`` now has."""
        name = self._check_name(name)
        given = np.asarray(vectors)
        v = given[None] if given.ndim == 1 else given
        if v.ndim != 2 or v.shape[1] != self.dim or v.dtype.kind not in "fiu":
            raise CnnkitError(f"{self._label()}: embeddings of shape {given.shape} ({v.dtype}), but the gallery holds "
                              f"{self.dim}-number embeddings of {self.model}; embed with the model that built it")
        sources = [str(s) for s in sources]
        if len(sources) != len(v):
            raise ValueError(f"{len(v)} vectors but {len(sources)} sources: give one source per vector")
        if not len(v):
            raise CnnkitError(f"{self._label()}: no embeddings to add for {name!r}; give at least one image")
        norms = np.linalg.norm(v.astype(np.float64), axis=1)  # float64: a finite float32 row can overflow
        for i in np.flatnonzero(~np.isfinite(norms) | (norms == 0)):
            what = "all zeros" if norms[i] == 0 else "not finite (NaN or infinity)"
            raise CnnkitError(f"{self._label()}: the embedding of {sources[i]} is {what}; check that image "
                              f"and the model's weights")
        if name not in self._names:
            self._names.append(name)
        ident = self._names.index(name)
        self._vectors = np.concatenate([self._vectors, normalise(v)])
        self._identity = np.concatenate([self._identity, np.full(len(v), ident, np.int32)])
        self._sources.extend(sources)
        self._changed()
        return int(np.count_nonzero(self._identity == ident))

    def sources_of(self, name: str) -> list[str]:
        """Where the vectors of ``name`` came from (file names), in enrolment order; [] for a name not enrolled."""
        if name not in self._names:
            return []
        ident = self._names.index(name)
        return [s for s, i in zip(self._sources, self._identity) if i == ident]

    def remove(self, name: str) -> int:
        """Remove ``name`` and all its vectors; returns how many vectors went."""
        if name not in self._names:
            hint = did_you_mean(name, self._names)
            if not hint and self._names:
                more = ", ..." if len(self._names) > 5 else ""
                hint = f" Enrolled: {', '.join(map(repr, sorted(self._names)[:5]))}{more}."
            raise CnnkitError(f"{self._label()}: no identity named {name!r}; give an enrolled name.{hint}")
        ident = self._names.index(name)
        keep = self._identity != ident
        self._vectors = self._vectors[keep]
        self._sources = [s for s, k in zip(self._sources, keep) if k]
        identity = self._identity[keep]
        self._identity = np.where(identity > ident, identity - 1, identity).astype(np.int32)
        del self._names[ident]
        self._changed()
        return int(np.count_nonzero(~keep))

    def search(self, queries: np.ndarray, k: int = 5, threshold: float | None = None) -> list[list[dict[str, Any]]]:
        """The ``k`` nearest enrolled identities to each of ``queries`` (Q, D) (or one (D,)), nearest first.

        Each is ``{"name": str, "distance": float (cosine distance, 0 to 2), "match": bool | None}``: ``match`` is
        distance <= ``threshold``, else <= the gallery's own threshold, None when neither is set. An identity's
        distance is that of its nearest vector. Fewer than ``k`` when fewer identities are enrolled.
        """
        label = self._label()
        if not len(self):
            raise CnnkitError(f"{label}: no identities enrolled; add some with `cnnkit gallery add ...`")
        given = np.asarray(queries)
        q = given[None] if given.ndim == 1 else given
        if q.ndim != 2 or q.shape[1] != self.dim or q.dtype.kind not in "fiu":
            raise CnnkitError(f"{label}: queries of shape {given.shape} ({q.dtype}), but the gallery holds "
                              f"{self.dim}-number embeddings of {self.model}; embed with the model that built it")
        if not np.isfinite(q).all():
            raise CnnkitError(f"{label}: a query embedding is not finite (NaN or infinity); check that image and "
                              f"the model's weights")
        if not isinstance(k, (int, np.integer)) or k < 1:
            raise CnnkitError(f"{label}: asked for the nearest {k!r} identities; ask for at least 1")
        limit = _check_threshold(threshold, label) if threshold is not None else self.threshold
        index = self._search_index()
        # an identity holds at most `most` of the nearest rows, so k * most rows hold k identities
        most = int(np.bincount(self._identity).max())
        distances, rows = index.search(q, min(len(self), int(k) * most))
        return [[{"name": self._names[ident], "distance": dist, "match": None if limit is None else dist <= limit}
                 for ident, dist in hits]
                for hits in nearest_identities(distances, rows, self._identity, int(k))]

    def _label(self) -> str:
        return str(self.path) if self.path is not None else "the gallery"

    def _check_name(self, name: str) -> str:
        if not isinstance(name, str) or not name.strip() or "\0" in name:
            raise CnnkitError(f"{self._label()}: the name {name!r} is empty or blank; give each identity a name")
        if name != name.strip() or any(ord(c) < 32 or ord(c) == 127 for c in name):
            raise CnnkitError(f"{self._label()}: the name {name!r} has spaces around it or control characters (a "
                              f"line break, a tab), which would make it look like another name in lists and CSV "
                              f"files; give it without them")
        return name

    def _changed(self) -> None:
        self._index = None
        self._header["updated"] = _now()

    def _search_index(self) -> VectorIndex:
        # rebuilt after add/remove (which drop it) and when use_faiss has changed since it was built
        if self._index is None or self._index_for != self.use_faiss:
            self._index = VectorIndex(self._vectors, use_faiss=self.use_faiss)
            self._index_for = self.use_faiss
        return self._index

"""Reading a gallery file (``cnnkit.recognition.gallery``'s format) and checking every part of it: no pickle,
no field this cnnkit does not know, nothing damaged; each refusal one line naming the file (torch-free)."""

from __future__ import annotations

import json
import math
import zipfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from cnnkit.errors import CnnkitError
from cnnkit.recognition.index import normalise

FORMAT = "cnnkit-gallery"
VERSION = 1
FIELDS = ("vectors", "identity", "names", "sources", "header")
HEADER_KEYS = ("format", "version", "fingerprint", "model", "dim", "threshold", "created", "updated")


def is_number(x: Any) -> bool:
    return isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(x, bool)



def read_gallery(path: Path) -> tuple[dict[str, Any], np.ndarray, np.ndarray, list[str], list[str]]:
    """(header, vectors (N, D) float32, identity (N,) int32, names, sources) of the gallery file ``path``,
    every part checked; CnnkitError naming the file otherwise."""
    arrays = _read_arrays(path)
    header = _parse_header(path, arrays["header"])
    return (header, *_check_arrays(path, header, arrays))


def _damaged(path: Path, what: str) -> CnnkitError:
    return CnnkitError(f"{path}: a damaged or foreign gallery file ({what}); rebuild it with `cnnkit gallery add`, "
                       f"or restore a copy")


def _read_arrays(path: Path) -> dict[str, np.ndarray]:
    """The gallery's arrays, all read into memory, without pickle."""
    try:
        with open(path, "rb") as f:
            # is_zipfile answers False when it cannot read, so the file is opened first: a permission error
            # is then not mistaken for a foreign file
            if not zipfile.is_zipfile(f):
                raise CnnkitError(f"{path}: not a gallery file (not an .npz archive, or a damaged one); give a "
                                  f"gallery that `cnnkit gallery add` made")
            f.seek(0)
            with zipfile.ZipFile(f) as archive:
                if any(n == "data.pkl" or n.endswith("/data.pkl") for n in archive.namelist()):
                    raise CnnkitError(f"{path}: a PyTorch checkpoint (best.pt?), not a gallery; pass it to "
                                      f"--weights, and as the gallery a file that `cnnkit gallery add` made")
            f.seek(0)
            with np.load(f, allow_pickle=False) as archive:
                return _fields(path, archive)
    except ValueError as e:
        if "pickle" in str(e) or "Object arrays" in str(e):
            raise CnnkitError(f"{path}: holds Python objects (pickle), which cnnkit never loads: they can run code; "
                              f"rebuild the gallery with `cnnkit gallery add`") from None
        raise _damaged(path, str(e)) from None
    except (zipfile.BadZipFile, zlib.error, EOFError, KeyError) as e:
        raise _damaged(path, str(e) or type(e).__name__) from None
    except OSError as e:
        raise CnnkitError(f"{path}: cannot read the gallery ({e.strerror or e}); check its permissions") from None


def _fields(path: Path, archive: Any) -> dict[str, np.ndarray]:
    """The arrays of an open ``np.load`` archive, which must hold exactly FIELDS."""
    _exactly(path, set(archive.files), FIELDS, "")
    return {f: archive[f] for f in FIELDS}


def _exactly(path: Path, have: set[str], expected: tuple[str, ...], part: str) -> None:
    """CnnkitError unless the gallery's ``part`` ("" for its arrays, "header " for its header) holds
    exactly ``expected``: unknown names mean a newer cnnkit or another file, missing ones damage."""
    unknown = sorted(have - set(expected))
    if unknown:
        raise CnnkitError(f"{path}: unknown {part}fields {', '.join(map(repr, unknown))} in a gallery file; "
                          f"upgrade cnnkit, or give a gallery that `cnnkit gallery add` made")
    missing = [name for name in expected if name not in have]
    if missing:
        raise _damaged(path, f"no {part and part + 'field '}{', '.join(map(repr, missing))}")


def _parse_header(path: Path, array: np.ndarray) -> dict[str, Any]:
    """The header's JSON, checked: format, version, known keys, types."""
    if array.shape != () or array.dtype.kind != "U":
        raise _damaged(path, "the header is not a JSON string")
    try:
        header = json.loads(str(array))
    except ValueError:
        raise _damaged(path, "the header is not JSON") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise CnnkitError(f"{path}: not a cnnkit gallery (its header names no format {FORMAT!r}); give a gallery "
                          f"that `cnnkit gallery add` made")
    version = header.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version != VERSION:
        newer = isinstance(version, int) and version > VERSION
        raise CnnkitError(f"{path}: gallery version {version!r}, but this cnnkit reads version {VERSION}; "
                          + ("upgrade cnnkit" if newer else "rebuild the gallery with `cnnkit gallery add`"))
    _exactly(path, set(header), HEADER_KEYS, "header ")
    strings = ("fingerprint", "model", "created", "updated")
    dim, threshold = header["dim"], header["threshold"]
    if not all(isinstance(header[key], str) for key in strings) or not header["fingerprint"] \
            or not isinstance(dim, int) or isinstance(dim, bool) or dim < 1 \
            or not (threshold is None or is_number(threshold) and math.isfinite(threshold) and 0 <= threshold <= 2):
        raise _damaged(path, "a header field of the wrong type")
    return header


def _check_arrays(path: Path, header: dict[str, Any],
                  arrays: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray, list[str], list[str]]:
    """(vectors, identity, names, sources) from the file's arrays, with their shapes and links checked."""
    vectors, identity, names, sources = (arrays[f] for f in ("vectors", "identity", "names", "sources"))
    n = len(vectors) if vectors.ndim == 2 else -1
    if n < 0 or vectors.shape[1] != header["dim"] or vectors.dtype.kind != "f":
        raise _damaged(path, f"vectors of shape {vectors.shape} ({vectors.dtype}), not (N, {header['dim']}) floats")
    if not np.isfinite(vectors).all():
        raise _damaged(path, "vectors that are not finite")
    if identity.shape != (n,) or identity.dtype.kind not in "iu" or sources.shape != (n,) \
            or (n and sources.dtype.kind != "U") or names.ndim != 1 or (len(names) and names.dtype.kind != "U"):
        raise _damaged(path, "arrays whose shapes or types disagree")
    name_list, source_list = [str(s) for s in names], [str(s) for s in sources]
    if len(set(name_list)) != len(name_list) or not all(s.strip() for s in name_list):
        raise _damaged(path, "names that repeat or are empty")
    if n and (identity.min() < 0 or identity.max() >= len(names)):
        raise _damaged(path, "vectors of identities that are not named")
    if len(names) and (not n or not np.bincount(identity.astype(np.int64), minlength=len(names)).all()):
        raise _damaged(path, "names without vectors")
    return normalise(vectors), identity.astype(np.int32), name_list, source_list

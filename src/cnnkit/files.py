"""Atomic file writes, without torch: used by the training engine and by the torch-free ONNX path."""

from __future__ import annotations

import csv
import io
import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# mkstemp makes 0600 files; an output is made as open() would make it (0666 less the umask), so that
# colleagues, containers and web servers read it as they read any other file the user writes
FILE_MODE = 0o666 & ~_umask()


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to a temporary file beside ``path``, fsync, then rename over ``path``.

    A crash leaves either the old file or the new one, never a torn file.
    """
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(21, "a folder, not a file", str(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as e:  # name the file the user asked for, not the temporary one
        raise OSError(e.errno, e.strerror, str(path)) from None
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), FILE_MODE)
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def next_free(base: Path) -> Path:
    """``base`` if it does not exist, else the first free of ``base2``, ``base3``, ... (run folders,
    predict and val outputs)."""
    folder, n = base, 1
    while folder.exists():
        n += 1
        folder = base.with_name(f"{base.name}{n}")
    return folder


def is_temporary(path: Path) -> bool:
    """A ``.<name>.*.tmp`` file of ``atomic_write_bytes``: one that remains was left by a killed writer."""
    return path.name.startswith(".") and path.name.endswith(".tmp")


def remove_stale_temporaries(folder: str | Path) -> list[Path]:
    """Delete the temporary files that a killed writer left in ``folder``; returns them."""
    folder = Path(folder)
    stale = [p for p in folder.iterdir() if is_temporary(p) and p.is_file()] if folder.is_dir() else []
    for p in stale:
        p.unlink(missing_ok=True)
    return stale


def atomic_write_csv(path: str | Path, rows: list[dict[str, Any]], fields: list[str] | None = None) -> None:
    """Write ``rows`` (dicts) as CSV, atomically; the header is ``fields``, else the union of the rows' keys in
    order (give ``fields`` where there may be no rows)."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=fields or list(dict.fromkeys(k for r in rows for k in r)))
    writer.writeheader()
    # an undefined value (NaN: a class absent from the data) is an empty cell: "nan" and "inf" are not
    # numbers to spreadsheets and most CSV readers
    writer.writerows({k: "" if isinstance(v, float) and not math.isfinite(v) else v for k, v in r.items()}
                     for r in rows)
    atomic_write_bytes(path, buf.getvalue().encode())


def finite_or_none(value: Any) -> Any:
    """``value`` with every non-finite float (in dicts, lists and tuples) turned into None."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite_or_none(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite_or_none(v) for v in value]
    return value


def json_bytes(value: Any, indent: int | None = 2) -> bytes:
    """JSON of ``value`` with undefined values (NaN, infinities) as null: Python writes them as NaN and
    Infinity, which are not JSON, and strict readers (browsers, jq, other languages) refuse the file."""
    return json.dumps(finite_or_none(value), indent=indent, allow_nan=False).encode()

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


def claim_folder(base: Path) -> Path:
    """Make and return ``base``, or the first of ``base2``, ``base3``, ... that this process claimed: a folder
    is taken by creating its marker file exclusively (``O_EXCL``), so two processes started at once never
    share one. A folder that holds anything but temporaries (an earlier run) is skipped; one whose marker
    names a process that is gone (killed before its first file) is taken again."""
    folder, n = base, 1
    while True:
        folder.mkdir(parents=True, exist_ok=True)
        if not any(p.name != CLAIM and not is_temporary(p) for p in folder.iterdir()) and _claim(folder / CLAIM):
            return folder
        n += 1
        folder = base.with_name(f"{base.name}{n}")


CLAIM = ".cnnkit-run"  # marks a run folder as taken, holding the claimer's process id (hidden from listings)


def _claim(marker: Path) -> bool:
    for _ in range(2):
        try:
            fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY, FILE_MODE)
        except FileExistsError:
            if not _claimer_gone(marker):
                return False
            marker.unlink(missing_ok=True)
            continue
        with os.fdopen(fd, "w") as f:
            f.write(str(os.getpid()))
        return True
    return False


def _claimer_gone(marker: Path) -> bool:
    try:
        pid = int(marker.read_text() or 0)
    except (OSError, ValueError):
        return False  # being written this moment: its claimer is alive
    if not pid or pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # another user's live process
        return False
    return False


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
    # NaN or infinity is an empty cell: 'nan' reads as a number in some tools and as text in others
    writer.writerows({k: "" if isinstance(v, float) and not math.isfinite(v) else v for k, v in r.items()}
                     for r in rows)
    atomic_write_bytes(path, buf.getvalue().encode())


def finite_or_none(obj: Any) -> Any:
    """``obj`` with every NaN or infinite float (numpy's too) as None, inside dicts, lists and tuples."""
    if isinstance(obj, float) or type(obj).__name__ in ("float32", "float64", "float16"):
        return float(obj) if math.isfinite(float(obj)) else None
    if isinstance(obj, dict):
        return {k: finite_or_none(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite_or_none(v) for v in obj]
    return obj


def json_bytes(obj: Any, indent: int | None = None) -> bytes:
    """Strict JSON: NaN and infinity become null (Python's json writes ``NaN``, which strict parsers
    and browsers reject)."""
    return json.dumps(finite_or_none(obj), indent=indent, allow_nan=False).encode()

"""Progress bars for long steps (training, validation, prediction, checks), in a terminal and in a notebook.

tqdm's auto front end draws a widget in Jupyter and text on a terminal; a bar is refreshed by time
(``REFRESH_S``), not by steps, so a slow step (13 s on a large instance image) never freezes it for
minutes. With no terminal and no notebook (a log file, a scheduler) there is no bar: the trainer
writes a line every 30 s instead. ``set_quiet(True)`` (``--quiet``) turns every bar off.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import Any

REFRESH_S = 0.5  # s between redraws: often enough to see it move, rarely enough to cost nothing
_QUIET = False


def set_quiet(quiet: bool) -> None:
    """No bars at all (logs, CI); messages and results are still printed."""
    global _QUIET
    _QUIET = quiet


def is_quiet() -> bool:
    """``--quiet`` was given: no bars and no lines that stand in for them."""
    return _QUIET


def in_notebook() -> bool:
    """Running under a Jupyter kernel (stderr is not a terminal there, yet a bar shows)."""
    return "ipykernel" in sys.modules


def terminal_width() -> int:
    """Columns of the terminal on stderr; 0 where there is none, or one of no size (``script`` without a tty)."""
    import os

    try:
        return os.get_terminal_size(sys.stderr.fileno()).columns if sys.stderr.isatty() else 0
    except (OSError, ValueError, AttributeError):
        return 0


def bars_shown() -> bool:
    """A bar can be seen: a notebook, or a terminal with columns (a 0-column one drew nothing, and the
    every-30-s lines that stand in for a bar were off too)."""
    return not _QUIET and (in_notebook() or terminal_width() > 0)


def progress_bar(iterable: Iterable | None = None, total: int | None = None, desc: str = "",
                 unit: str = "it", leave: bool = False) -> Any:
    """A tqdm bar (``tqdm.auto``) over ``iterable``, or a disabled one where bars are not shown."""
    from tqdm.auto import tqdm

    return tqdm(iterable, total=total, desc=desc, unit=unit, leave=leave, file=sys.stderr, dynamic_ncols=True,
                mininterval=REFRESH_S, disable=not bars_shown())


def format_duration(seconds: float) -> str:
    """'45s', '12m05s', '3h02m'."""
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"

"""User-facing errors: one line that names the file and the fix; the CLI exits with code 2."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class CnnkitError(Exception):
    """A problem with the user's input (path, data, config, checkpoint), not a bug in cnnkit."""


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """Return ' Did you mean X?' for the closest of `choices`, or '' when nothing is close."""
    close = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.5)
    return f" Did you mean '{close[0]}'?" if close else ""


def require(module: str, extra: str, purpose: str) -> None:
    """Import ``module`` or raise CnnkitError naming the optional extra that installs it, e.g.
    ``require("onnxruntime", "export", "running an .onnx file")``."""
    import importlib

    try:
        importlib.import_module(module)
    except ImportError:
        raise CnnkitError(f"{purpose} needs {module.split('.')[0]}, which is not installed: "
                          f"pip install 'cnnkit[{extra}]'") from None

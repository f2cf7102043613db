"""Architecture diagrams: ``cnnkit summary MODEL --diagram FILE.svg|.png``.

``architecture(net, input_shape)`` finds the blocks (convolutions, pooling, fully connected layers with
dropout, encoder and decoder stages, a detector's parts) and the edges between them (data flow, skip
connections, max-pool indices) from one forward pass; ``draw_diagram`` writes them as an SVG or PNG,
``diagram_svg`` returns the SVG text (for embedding in an HTML page). Offline: matplotlib only.
"""

from __future__ import annotations

import io
from pathlib import Path

from torch import nn

from cnnkit.errors import CnnkitError
from cnnkit.files import atomic_write_bytes
from cnnkit.models.diagram_draw import render
from cnnkit.models.diagram_graph import Block, Edge, architecture, edges

__all__ = ["FORMATS", "Block", "Edge", "architecture", "diagram_svg", "draw_diagram", "edges"]

FORMATS = (".svg", ".png")
PNG_DPI = 110


def _title(net: nn.Module, blocks: list[Block]) -> str:
    shape = "×".join(str(d) for d in blocks[0].out_shape)
    return f"{type(net).__name__}, input {shape}"


def _image(net: nn.Module, input_shape: tuple[int, ...], fmt: str, title: str) -> bytes:
    from matplotlib import rc_context

    blocks = architecture(net, input_shape)
    fig = render(blocks, title or _title(net, blocks))
    buffer = io.BytesIO()
    with rc_context({"svg.fonttype": "none", "svg.hashsalt": "cnnkit"}):  # text stays text; same input, same file
        fig.savefig(buffer, format=fmt, dpi=PNG_DPI, metadata={"Date": None} if fmt == "svg" else None)
    return buffer.getvalue()


def diagram_svg(net: nn.Module, input_shape: tuple[int, ...], title: str = "") -> str:
    """The diagram of ``net`` on inputs of ``input_shape`` ((N, C, H, W) or (C, H, W)) as SVG text, its labels
    kept as text. Raises CnnkitError when the network cannot run at that size."""
    return _image(net, input_shape, "svg", title).decode("utf-8")


def draw_diagram(net: nn.Module, input_shape: tuple[int, ...], path: Path, title: str = "") -> Path:
    """Write the diagram of ``net`` to ``path``, an .svg or .png file (by its suffix); returns ``path``.

    Raises CnnkitError for another suffix (before running anything) or a size the network cannot run at."""
    path = Path(path)
    fmt = path.suffix.lower()
    if fmt not in FORMATS:
        raise CnnkitError(f"{path}: a diagram is written as .svg or .png, not '{path.suffix}'; "
                          "name the file with one of those")
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, _image(net, input_shape, fmt[1:], title))
    return path

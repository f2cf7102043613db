"""Drawing ``architecture``'s blocks with matplotlib (no display, no pyplot state): one row per resolution,
so that a classifier descends as its maps shrink, a U-Net is a U and its skips run straight across.

Units are inches. Blocks go left to right in call order; a block sits under or over the one before it
when their rows differ (half a block further on), beside it when they share a row. Blocks whose maps are
not the image's (a vector, a region's 7x7 map) follow on the row of the block before them, in runs of at
most ``RUN`` a row, snaking back on the row below.
"""

from __future__ import annotations

import math
import textwrap
from dataclasses import dataclass
from typing import TYPE_CHECKING

from cnnkit.models.diagram_graph import Block, Edge, edges

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

W, H = 1.75, 0.74  # block size
GAP = 0.22  # between blocks on one row
STEP = W / 2 + 0.1  # from a block to the next on another row
PITCH = 1.12  # between rows
RUN = 5
MARGIN = 0.3

COLOURS = {  # fill by kind, each its own (a legend entry names one kind); drawn in the legend in this order
    "input": "#e5e5e5", "conv": "#9ecae1", "stage": "#c6dbef", "encoder stage": "#6baed6",
    "deconv": "#a1d99b", "decoder stage": "#74c476", "upsample": "#c7e9c0", "unpool": "#e5f5e0",
    "pool": "#fdd49e", "roi pool": "#fee391", "fc": "#cbc9e2", "dropout": "#fcc5c0", "flatten": "#e7d4e8",
    "norm": "#fff7bc", "act": "#f6e8c3", "fpn": "#bdbdbd", "rpn": "#fdae6b", "head": "#fc9272", "other": "#f7f7f7",
}
EDGE_STYLES = {  # colour, line style, width, what the legend calls it
    "sequential": ("#404040", "-", 1.0, "data flow"),
    "skip": ("#2171b5", "-", 1.6, "skip connection"),
    "indices": ("#cb181d", "--", 1.3, "max-pool indices"),
    "data": ("#808080", ":", 1.2, "other input"),
}


@dataclass
class Place:
    x: float  # centre
    row: int
    leftward: bool = False  # in a run that snakes back (its arrows point left)

    @property
    def y(self) -> float:
        return -self.row * PITCH


def _rows(blocks: list[Block]) -> list[int]:
    """A row per distinct resolution (finest first); a block without one takes the row of the block before."""
    levels = sorted({b.level for b in blocks if b.level is not None})
    rank = {level: i for i, level in enumerate(levels)}
    rows, row = [], 0
    for b in blocks:
        row = rank[b.level] if b.level is not None else row
        rows.append(row)
    return rows


def _run_lengths(blocks: list[Block]) -> list[int]:
    """For each block, how many blocks there are in its run of blocks without a resolution (0: it has one)."""
    out = [0] * len(blocks)
    i = 0
    while i < len(blocks):
        j = i
        while j < len(blocks) and blocks[j].level is None:
            j += 1
        out[i:j] = [j - i] * (j - i)
        i = max(j, i + 1)
    return out


def _per_line(n: int) -> int:
    """Blocks a line in a run of ``n``: all up to ``RUN``, else lines of at most four, as even as can be."""
    return n if n <= RUN else math.ceil(n / math.ceil(n / 4))


def layout(blocks: list[Block]) -> list[Place]:
    """Where each block goes (see the module's docstring)."""
    rows = _rows(blocks)
    lengths = _run_lengths(blocks)
    places = [Place(0.0, rows[0])]
    right: dict[int, float] = {rows[0]: W / 2}  # row -> right edge of its last block
    run, anchor = 0, rows[0]  # the block's place in its run of blocks without a resolution; the run's row
    for i, b in enumerate(blocks[1:], 1):
        prev = places[-1]
        run = run + 1 if b.level is None else 0
        anchor = prev.row if run == 1 else anchor
        line, col = divmod(run - 1, _per_line(lengths[i]) if run else 1)
        if run and line:  # snake on, a row further down, in the other direction
            leftward = line % 2 == 1
            x = prev.x if col == 0 else prev.x + (-(W + GAP) if leftward else W + GAP)
            places.append(Place(x, anchor + line, leftward))
        else:
            row = rows[i] if b.level is not None else prev.row
            x = prev.x + (W + GAP if row == prev.row else STEP)
            places.append(Place(max(x, right.get(row, -1e9) + GAP + W / 2), row))
        place = places[-1]
        right[place.row] = max(right.get(place.row, -1e9), place.x + W / 2)
    return places


def _wrap(text: str, width: int = 28, lines: int = 2) -> list[str]:
    """At most ``lines`` lines of ``width`` characters, broken between the parts of "a + b + c" first."""
    out: list[str] = []
    for part in text.split(" + ") if text else []:
        if out and len(out[-1]) + 3 + len(part) <= width:
            out[-1] += " + " + part
        else:
            out += textwrap.wrap(("+ " if out else "") + part, width, break_on_hyphens=False)
    if len(out) > lines:
        out = out[:lines]
        out[-1] = out[-1][:width - 1] + "…"
    return out


def _text(ax: Axes, b: Block, p: Place) -> None:
    lines = [(b.label, 8.5, "bold")]
    detail = _wrap(b.detail)
    lines += [(d, 7.0, "normal") for d in detail]
    lines.append((b.shape_text, 7.5, "normal"))
    step = 0.145
    top = p.y + step * (len(lines) - 1) / 2
    for k, (text, size, weight) in enumerate(lines):
        colour = "#303030" if k == len(lines) - 1 and k else "black"
        ax.text(p.x, top - k * step, text, ha="center", va="center", fontsize=size, fontweight=weight,
                color=colour)


def _box(ax: Axes, b: Block, p: Place) -> None:
    from matplotlib.patches import FancyBboxPatch

    ax.add_patch(FancyBboxPatch((p.x - W / 2, p.y - H / 2), W, H, boxstyle="round,pad=0,rounding_size=0.06",
                                facecolor=COLOURS.get(b.kind, COLOURS["other"]), edgecolor="#505050", lw=0.8))
    _text(ax, b, p)


def _between_on_row(places: list[Place], a: int, b: int) -> bool:
    """Whether a block stands on the row of ``a`` and ``b`` between them."""
    lo, hi = sorted((places[a].x, places[b].x))
    return any(p.row == places[a].row and lo < p.x < hi for k, p in enumerate(places) if k not in (a, b))


def _arrow(ax: Axes, points: list[tuple[float, float]], kind: str) -> None:
    from matplotlib.patches import FancyArrowPatch
    from matplotlib.path import Path as MplPath

    colour, style, width, _ = EDGE_STYLES[kind]
    path = MplPath(points, [MplPath.MOVETO] + [MplPath.LINETO] * (len(points) - 1))
    ax.add_patch(FancyArrowPatch(path=path, arrowstyle="-|>,head_length=4,head_width=2.2", color=colour, lw=width,
                                 linestyle=style, shrinkA=0, shrinkB=0, joinstyle="miter", zorder=3))


def _sequential(places: list[Place], e: Edge) -> list[tuple[float, float]]:
    a, b = places[e.source], places[e.target]
    if a.row == b.row:
        sign = 1 if b.x > a.x else -1
        return [(a.x + sign * W / 2, a.y), (b.x - sign * W / 2, b.y)]
    lo, hi = max(a.x, b.x) - W / 2, min(a.x, b.x) + W / 2
    down = b.row > a.row
    ya, yb = (a.y - H / 2, b.y + H / 2) if down else (a.y + H / 2, b.y - H / 2)
    if hi - lo > 0.15:  # the boxes overlap in x: a vertical arrow through the middle of the overlap
        x = (lo + hi) / 2
        return [(x, ya), (x, yb)]
    return [(a.x, ya), (a.x, (ya + yb) / 2), (b.x, (ya + yb) / 2), (b.x, yb)]


def _beside(points: list[tuple[float, float]], offset: float = 0.16) -> list[tuple[float, float]]:
    """The same path moved aside: left of a vertical one, under a horizontal one."""
    vertical = points[0][0] == points[-1][0]
    return [(x - offset, y) if vertical else (x, y - offset) for x, y in points]


def _lane(places: list[Place], e: Edge, k: int) -> list[tuple[float, float]]:
    """Up from the source's top to lane ``k`` between the higher row and the row above, across, down into the
    target's top."""
    a, b = places[e.source], places[e.target]
    y = -min(a.row, b.row) * PITCH + H / 2 + 0.13 + 0.065 * (k % 4)
    xa, xb = a.x + W / 4, b.x - W / 4 + 0.14 * (k % 4)
    return [(xa, a.y + H / 2), (xa, y), (xb, y), (xb, b.y + H / 2)]


def _lanes(places: list[Place], routed: list[Edge]) -> dict[Edge, int]:
    """Lane numbers, the shortest edge lowest above each row: then no two lanes cross (the longer edges rise
    and land outside the shorter ones)."""
    out: dict[Edge, int] = {}
    by_row: dict[int, list[Edge]] = {}
    for e in routed:
        by_row.setdefault(min(places[e.source].row, places[e.target].row), []).append(e)
    for group in by_row.values():
        group.sort(key=lambda e: abs(places[e.target].x - places[e.source].x))
        out.update({e: k for k, e in enumerate(group)})
    return out


def render(blocks: list[Block], title: str = "") -> Figure:
    """The diagram as a matplotlib Figure (not attached to pyplot: nothing to close)."""
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    places = layout(blocks)
    xs = [p.x for p in places]
    rows = [p.row for p in places]
    left, right = min(xs) - W / 2 - MARGIN, max(xs) + W / 2 + MARGIN
    kinds = [k for k in COLOURS if any(b.kind == k for b in blocks)]
    edge_kinds = [k for k in EDGE_STYLES if any(e.kind == k for e in edges(blocks))]
    legend_rows = 1 + (len(kinds) + len(edge_kinds)) // 7
    bottom = -max(rows) * PITCH - H / 2 - MARGIN - 0.28 * legend_rows - 0.1
    top = H / 2 + MARGIN + 0.35 + (0.3 if title else 0)
    width, height = max(right - left, 5.0), top - bottom
    fig = Figure(figsize=(width, height))
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(left, left + width)
    ax.set_ylim(bottom, top)
    ax.set_axis_off()
    for b, p in zip(blocks, places):
        _box(ax, b, p)
    routed = []
    for e in edges(blocks):
        straight = places[e.source].row == places[e.target].row and not _between_on_row(places, e.source, e.target)
        if e.kind == "sequential" or straight:
            _arrow(ax, _sequential(places, e), e.kind)
        elif e.target == e.source + 1:  # beside the data flow between the same two blocks
            _arrow(ax, _beside(_sequential(places, e)), e.kind)
        else:
            routed.append(e)
    for e, k in _lanes(places, routed).items():
        _arrow(ax, _lane(places, e, k), e.kind)
    if title:
        ax.text(left + MARGIN, top - 0.25, title, ha="left", va="center", fontsize=10, fontweight="bold")
    handles = [Patch(facecolor=COLOURS[k], edgecolor="#505050", label=k) for k in kinds]
    handles += [Line2D([], [], color=EDGE_STYLES[k][0], linestyle=EDGE_STYLES[k][1], lw=EDGE_STYLES[k][2],
                       label=EDGE_STYLES[k][3]) for k in edge_kinds]
    fig.legend(handles=handles, loc="lower center", ncol=min(7, len(handles)), fontsize=7.5, frameon=False,
               handlelength=1.6, columnspacing=1.2)
    return fig

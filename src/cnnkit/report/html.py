"""The HTML of a run report: one self-contained page (inline CSS, images as base64 ``data:`` URIs, inline SVG;
no script, no network), built from small escaped pieces. Torch-free."""

from __future__ import annotations

import base64
import io
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from html import escape
from typing import Any

from PIL import Image

CSS = """
:root { --ink: #1f2933; --muted: #616e7c; --line: #d9e2ec; --back: #f5f7fa; --accent: #2f6fde; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif;
       color: var(--ink); background: var(--back); }
header { background: #102a43; color: #f0f4f8; padding: 20px 32px 16px; }
header h1 { margin: 0 0 4px; font-size: 24px; }
header .sub { color: #bcccdc; }
nav { position: sticky; top: 0; z-index: 1; background: #fff; border-bottom: 1px solid var(--line);
      padding: 8px 32px; display: flex; gap: 18px; flex-wrap: wrap; }
nav a { color: var(--accent); text-decoration: none; }
main { padding: 8px 32px 40px; max-width: 1400px; }
section { background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: 14px 20px 18px;
          margin: 18px 0; }
h2 { margin: 0 0 10px; font-size: 18px; }
h3 { margin: 16px 0 6px; font-size: 15px; }
p.note { color: var(--muted); margin: 6px 0; }
.cards { display: flex; flex-wrap: wrap; gap: 10px; margin-top: 14px; }
.card { background: #243b53; border-radius: 6px; padding: 6px 12px; min-width: 92px; }
.card.main { background: var(--accent); }
.card .k { font-size: 11px; color: #bcccdc; text-transform: uppercase; letter-spacing: .04em; }
.card.main .k { color: #e6efff; }
.card .v { font-size: 18px; font-weight: 600; color: #fff; }
table { border-collapse: collapse; font-size: 13px; font-variant-numeric: tabular-nums; }
th, td { border: 1px solid var(--line); padding: 3px 8px; text-align: right; }
th { background: #f0f4f8; font-weight: 600; }
td.l, th.l { text-align: left; }
.scroll { max-height: 420px; overflow: auto; display: inline-block; max-width: 100%; }
.grid { display: flex; flex-wrap: wrap; gap: 16px; align-items: flex-start; }
figure { margin: 0; }
figure img { display: block; max-width: 100%; height: auto; border: 1px solid var(--line); }
figcaption { font-size: 12px; color: var(--muted); margin-top: 4px; max-width: 420px; }
.pair { display: flex; gap: 8px; }
.pair figure { width: 256px; }
.pair img { width: 256px; height: auto; image-rendering: pixelated; }
.maps img { width: 224px; height: auto; image-rendering: pixelated; }
.maps figure { width: 224px; }
.item { border: 1px solid var(--line); border-radius: 6px; padding: 8px; background: #fbfcfd; }
.item .loss { font-weight: 600; color: #b42318; }
.bad { color: #b42318; }
.config { columns: 3 300px; column-gap: 24px; }
.config table { width: 100%; }
.config td { text-align: left; word-break: break-word; }
.config td.k { color: var(--muted); white-space: nowrap; }
.svg { overflow-x: auto; border: 1px solid var(--line); padding: 8px; background: #fff; }
.svg svg { display: block; max-width: none; height: auto; }  /* its own size, scrolled: shrunk, it cannot be read */
footer { color: var(--muted); font-size: 12px; padding: 0 32px 24px; }
"""


@dataclass
class Section:
    """One part of the page: its anchor, title and HTML body (already escaped)."""

    key: str
    title: str
    body: str
    notes: list[str] = field(default_factory=list)


def note(text: str) -> str:
    """A muted sentence (escaped): why a part is missing, what a figure shows."""
    return f'<p class="note">{escape(text)}</p>'


def png_uri(image: Image.Image | bytes) -> str:
    """A ``data:image/png;base64,...`` URI of a PIL image or of PNG bytes already encoded."""
    if isinstance(image, Image.Image):
        buffer = io.BytesIO()
        picture = image if image.mode in ("RGB", "RGBA", "L", "LA", "P") else image.convert("RGB")
        picture.save(buffer, format="PNG", optimize=False)
        image = buffer.getvalue()
    return "data:image/png;base64," + base64.b64encode(image).decode("ascii")


def img(image: Image.Image | bytes, alt: str, width: int = 0) -> str:
    """An inline ``<img>`` (``width`` in CSS pixels; 0: its own)."""
    size = f' style="width:{width}px"' if width else ""
    return f'<img src="{png_uri(image)}" alt="{escape(alt)}"{size}>'


def figure(image: Image.Image | bytes, caption: str, width: int = 0, shown: bool = True) -> str:
    """An image with its caption (``shown`` False: the caption is the image's alt text alone)."""
    said = f"<figcaption>{escape(caption)}</figcaption>" if shown else ""
    return f"<figure>{img(image, caption, width)}{said}</figure>"


def number(value: Any) -> str:
    """A table cell's text: floats to 4 significant digits (large ones grouped), the rest as they are."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            return "-"
        if abs(value) >= 1000:
            return f"{value:,.0f}"
        return f"{value:.4g}" if abs(value) >= 1e-3 or value == 0 else f"{value:.2e}"
    return f"{value:,}"


def parsed(text: str) -> Any:
    """A CSV cell as a number when it is one (for formatting), else the text."""
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        return text


def table(header: Sequence[str], rows: Iterable[Sequence[Any]], shades: Sequence[Sequence[float]] | None = None,
          scroll: bool = False) -> str:
    """An HTML table; the first column is left-aligned (names). ``shades``: per row a 0..1 value per cell after
    the first, drawn as a blue background (a confusion matrix's row fractions)."""
    head = "".join(f'<th class="{"l" if i == 0 else ""}">{escape(str(h))}</th>' for i, h in enumerate(header))
    body = []
    for r, row in enumerate(rows):
        cells = []
        for i, value in enumerate(row):
            style = ""
            if shades is not None and i > 0 and r < len(shades) and i - 1 < len(shades[r]):
                level = max(0.0, min(1.0, shades[r][i - 1]))
                ink = "#fff" if level > 0.55 else "inherit"
                style = f' style="background:rgba(47,111,222,{level:.2f});color:{ink}"'
            cells.append(f'<td class="{"l" if i == 0 else ""}"{style}>{escape(number(value))}</td>')
        body.append("<tr>" + "".join(cells) + "</tr>")
    html = f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"
    return f'<div class="scroll">{html}</div>' if scroll else html


def cards(figures: Sequence[tuple[str, str]], main: str = "") -> str:
    """The headline figures: (name, value text) boxes, ``main`` (the monitored metric) highlighted."""
    boxes = "".join(f'<div class="card{" main" if name == main else ""}"><div class="k">{escape(name)}</div>'
                    f'<div class="v">{escape(value)}</div></div>' for name, value in figures)
    return f'<div class="cards">{boxes}</div>'


def page(title: str, subtitle: str, headline: str, sections: Sequence[Section], footer: str) -> str:
    """The whole document: header, a link per section, the sections, the footer."""
    links = "".join(f'<a href="#{s.key}">{escape(s.title)}</a>' for s in sections)
    parts = "".join(f'<section id="{s.key}"><h2>{escape(s.title)}</h2>{s.body}'
                    + "".join(note(n) for n in s.notes) + "</section>" for s in sections)
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>{escape(title)}</title><style>{CSS}</style></head><body>"
            f"<header><h1>{escape(title)}</h1><div class=\"sub\">{escape(subtitle)}</div>{headline}</header>"
            f"<nav>{links}</nav><main>{parts}</main><footer>{escape(footer)}</footer></body></html>\n")

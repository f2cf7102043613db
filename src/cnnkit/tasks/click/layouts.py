"""The layouts click models train on (torch-free): instance segmentation's (each object a target) and semantic
segmentation's (each connected region of a class a target), the very ``Layout`` objects those tasks declare,
taken from the task registry (a task imports no other task's package).

Most specific first, as ``choose`` tries them: a marker file (COCO, a data.yaml, VOC, Cityscapes), then a
structure (16-bit instance maps, one PNG per object, SegNet's folders), then images beside masks, read as
class masks (segment's reader: its catch-all, last). Images beside 8-bit instance maps are read the same way,
and come out the same: each id is one region of its own value. The synthetic shapes are instance
segmentation's (each shape an object, touching or not).

Each is declared here below the rank of a catch-all (``ASKED``): the data is those tasks' first, so `cnnkit
data check` never guesses click for it nor lists it among the other readings; ``--task click`` checks it as
click models read it."""

from __future__ import annotations

import dataclasses

from cnnkit.data.layout import FOLDERS, Layout
from cnnkit.tasks.registry import get_layouts

ASKED = FOLDERS - 1  # the rank of every layout here: read as click data when asked (--task click, training)

OBJECTS_FROM = "instance"  # the task whose layouts give objects one by one
REGIONS_FROM = "segment"  # the task whose layouts give class masks, split here into connected regions


def _layouts() -> tuple[tuple[Layout, ...], tuple[Layout, ...]]:
    """(object layouts, all layouts in the order training tries them), each at rank ``ASKED``."""
    objects = get_layouts(OBJECTS_FROM)[:-1]  # its catch-all (instance maps) is segment's catch-all's data
    names = {layout.name for layout in objects}
    regions = tuple(layout for layout in get_layouts(REGIONS_FROM) if layout.name not in names)  # shapes: once
    # tried by their own ranks (stable: objects before regions at equal rank); the regions' catch-all stays last
    order = (*sorted((*objects, *regions[:-1]), key=lambda layout: -layout.rank), regions[-1])
    asked = {layout: dataclasses.replace(layout, rank=ASKED) for layout in order}
    return tuple(asked[layout] for layout in objects), tuple(asked[layout] for layout in order)


OBJECT_LAYOUTS, LAYOUTS = _layouts()

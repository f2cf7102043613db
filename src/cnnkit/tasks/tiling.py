"""Tile geometry shared by the tasks that predict in tiles (segment's sliding window, instance's
merged tiles), and the one check of the options that set it."""

from __future__ import annotations

from cnnkit.errors import CnnkitError


def check_tiling(tile: int, overlap: float) -> None:
    """``tile``: side in pixels, 0 for the task's default; ``overlap``: fraction of a tile in [0, 1).
    Raises CnnkitError otherwise (an overlap of 1 would never advance)."""
    if tile < 0:
        raise CnnkitError(f"--tile {tile}: give a tile side in pixels, or 0 for the default")
    if not 0 <= overlap < 1:
        raise CnnkitError(f"--overlap must be in [0, 1), got {overlap}")


def tile_starts(length: int, tile: int, step: int) -> list[int]:
    """Start offsets of tiles of ``tile`` pixels every ``step`` pixels, the last flush with the end."""
    if length <= tile:
        return [0]
    starts = list(range(0, length - tile, step))
    return starts + [length - tile]

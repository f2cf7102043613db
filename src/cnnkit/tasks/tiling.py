"""Tile geometry shared by the tasks that predict in tiles (segment's sliding window, instance's
merged tiles), and the one check of the options that set it."""

from __future__ import annotations

from cnnkit.errors import CnnkitError

MIN_TILE = 16  # px: a smaller tile holds too little for a CNN to see, and tiles grow as its square
MAX_OVERLAP = 0.9  # fraction: each pixel then goes through the model about 1 / (1 - 0.9) ** 2 = 100 times


def check_tiling(tile: int, overlap: float) -> None:
    """``tile``: side in pixels, 0 for the task's default, else at least MIN_TILE; ``overlap``: fraction
    of a tile in [0, MAX_OVERLAP]. Raises CnnkitError otherwise: an overlap near 1 or a tile of a few
    pixels means millions of tiles, which looks like a hang."""
    if tile < 0 or 0 < tile < MIN_TILE:
        raise CnnkitError(f"--tile {tile}: give a tile side of at least {MIN_TILE} pixels, or 0 for the default")
    if not 0 <= overlap <= MAX_OVERLAP:
        raise CnnkitError(f"--overlap must be in [0, {MAX_OVERLAP}], got {overlap}")


def tile_starts(length: int, tile: int, step: int) -> list[int]:
    """Start offsets of tiles of ``tile`` pixels every ``step`` pixels, the last flush with the end."""
    if length <= tile:
        return [0]
    starts = list(range(0, length - tile, step))
    return starts + [length - tile]

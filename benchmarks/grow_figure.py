"""The README's picture of `cnnkit segment`: CamVid val images with 5 seeds per class, the masks grown
from them, the segments found without seeds, and the truth.

    python benchmarks/grow_figure.py --camvid ../shared/datasets/camvid --out docs/segment_from_seeds.png
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

import cnnkit  # noqa: I001

sys.path.insert(0, str(Path(__file__).resolve().parent))
from grow_data import CAMVID_VOID, draw_seeds, load_camvid  # noqa: E402

from cnnkit.meta import default_colours

SHOWN = (3, 40)  # indices of the val images drawn (a street and a road ahead)
TILE = 240  # px, the width of each panel


def panel(picture: Image.Image, title: str) -> Image.Image:
    picture = picture.convert("RGB").resize((TILE, round(picture.height * TILE / picture.width)))
    draw = ImageDraw.Draw(picture)
    draw.text((4, picture.height - 14), title, fill=(255, 255, 255), stroke_width=2, stroke_fill=(0, 0, 0))
    return picture


def with_seeds(image: np.ndarray, seeds: np.ndarray, colours: list) -> Image.Image:
    picture = Image.fromarray(image)
    draw = ImageDraw.Draw(picture)
    for y, x in zip(*np.nonzero(seeds)):
        colour = tuple(colours[seeds[y, x] - 1])
        draw.ellipse([x - 5, y - 5, x + 5, y + 5], fill=colour, outline=(255, 255, 255), width=2)
    return picture


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--camvid", default="../shared/datasets/camvid")
    parser.add_argument("--images", type=int, default=101, help="val images segmented together")
    parser.add_argument("--out", default="docs/segment_from_seeds.png")
    args = parser.parse_args()
    data = load_camvid(Path(args.camvid), args.images)
    rng = np.random.default_rng(0)
    seeds = [draw_seeds(t, list(range(CAMVID_VOID)), 5, rng) for t in data.truths]
    seeded = cnnkit.segment_images(data.images, seeds, classes=data.classes)
    found = cnnkit.segment_images(data.images, max_segments=len(data.classes))
    colours = [tuple(c) for c in seeded[0].meta.colours]
    rows = []
    for i in SHOWN:
        truth = np.where(data.truths[i] == CAMVID_VOID, 255, data.truths[i]).astype(np.uint8)
        lut = np.zeros((256, 3), np.uint8)
        lut[: len(colours)] = colours
        tiles = [panel(with_seeds(data.images[i], seeds[i], default_colours(len(colours))), "image + 5 seeds a class"),
                 panel(seeded[i].plot(), "grown from the seeds"), panel(found[i].plot(), "found without seeds"),
                 panel(Image.fromarray(lut[truth]), "truth")]
        rows.append(tiles)
    height = sum(r[0].height for r in rows)
    sheet = Image.new("RGB", (TILE * 4, height))
    y = 0
    for tiles in rows:
        for j, tile in enumerate(tiles):
            sheet.paste(tile, (TILE * j, y))
        y += tiles[0].height
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    sheet.save(args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

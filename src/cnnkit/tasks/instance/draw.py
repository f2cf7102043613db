"""Pictures and files of instance results: overlays (each object its own colour, with its label and
score), instance-map PNGs and the COCO results JSON."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from cnnkit.data.rle import decode_rle
from cnnkit.files import atomic_write_bytes, json_bytes
from cnnkit.meta import ModelMeta, default_colours
from cnnkit.tasks.common import save_png
from cnnkit.tasks.instance import coco_ids

MAX_LABELS = 60  # objects labelled with text on an overlay; more would hide the image


def instance_colours(n: int) -> np.ndarray:
    """``(n, 3)`` uint8 colours far apart in hue (golden-ratio steps), bright enough to see."""
    return np.array(default_colours(n), np.uint8).reshape(-1, 3)


def decode(inst: dict) -> np.ndarray | None:
    if "rle" not in inst:
        return None
    return decode_rle(inst["rle"])


def overlay(image: Image.Image, instances: list[dict], meta: ModelMeta, alpha: float = 0.45) -> Image.Image:
    """Masks blended in, boxes outlined, and '<class> <score>' above each box (highest scores first)."""
    base = np.asarray(image.convert("RGB"), dtype=np.float32)
    colours = instance_colours(len(instances))
    for inst, colour in zip(reversed(instances), colours[::-1]):  # best scores drawn last, on top
        mask = decode(inst)
        if mask is not None:
            base[mask] = (1 - alpha) * base[mask] + alpha * colour
    picture = Image.fromarray(base.clip(0, 255).astype(np.uint8))
    scale = 256 / max(picture.size) if max(picture.size) < 256 else 1.0  # enlarge small images for the text
    if scale > 1:
        picture = picture.resize((round(picture.width * scale), round(picture.height * scale)), Image.NEAREST)
    draw = ImageDraw.Draw(picture)
    for k, (inst, colour) in enumerate(zip(instances, colours)):
        x0, y0, x1, y1 = (v * scale for v in inst["box"])
        draw.rectangle([x0, y0, x1, y1], outline=tuple(int(c) for c in colour), width=1)
        if k < MAX_LABELS:
            draw.text((x0 + 1, max(y0 - 11, 0)), f"{inst['class']} {inst['score']:.2f}", fill=(255, 255, 255),
                      stroke_width=1, stroke_fill=(0, 0, 0))
    return picture


def instance_map(instances: list[dict], size: tuple[int, int]) -> Image.Image:
    """(H, W) ids: 0 background, k for the k-th instance (highest score on top where masks overlap);
    8-bit for up to 255 objects, 16-bit beyond."""
    ids = np.zeros(size, np.uint16)
    for k in range(len(instances), 0, -1):  # lower scores first, so higher ones overwrite them
        mask = decode(instances[k - 1])
        if mask is not None:
            ids[mask] = k
    return Image.fromarray(ids.astype(np.uint8) if len(instances) <= 255 else ids)


def write_instance_outputs(image: Image.Image, prediction: dict, meta: ModelMeta, folder: Path, stem: str,
                           pictures: bool = True) -> dict[str, str]:
    """<stem>_instances.png (instance ids, with masks) always; <stem>_overlay.png unless ``pictures`` is off."""
    written = {}
    instances = prediction["instances"]
    if any("rle" in i for i in instances) or not instances:
        written["instances"] = folder / f"{stem}_instances.png"
        save_png(instance_map(instances, (image.height, image.width)), written["instances"])
    if pictures:
        written["overlay"] = folder / f"{stem}_overlay.png"
        save_png(overlay(image, instances, meta), written["overlay"])
    return {k: str(v) for k, v in written.items()}


def write_results(records: list[dict], meta: ModelMeta, folder: Path) -> Path:
    """coco_results.json: COCO's results format (image_id, category_id, bbox xywh, score, RLE
    segmentation), in the ids of the COCO file the model was trained on where it was (see coco_ids),
    and coco_images.json: the images and categories it refers to."""
    images, results = [], []
    cat_ids = coco_ids.category_ids(meta)
    for image_id, record in zip(coco_ids.image_ids(records, meta), records):
        width, height = record["size"]
        images.append({"id": image_id, "file_name": record["path"], "width": width, "height": height})
        for inst in record["instances"]:
            x0, y0, x1, y1 = inst["box"]
            det = {"image_id": image_id, "category_id": cat_ids[inst["class_id"]],
                   "bbox": [x0, y0, round(x1 - x0, 2), round(y1 - y0, 2)], "score": inst["score"]}
            if "rle" in inst:
                det["segmentation"] = inst["rle"]
            results.append(det)
    categories = [{"id": i, "name": n} for i, n in zip(cat_ids, meta.classes)]
    path = folder / "coco_results.json"
    atomic_write_bytes(path, json_bytes(results))
    atomic_write_bytes(folder / "coco_images.json", json_bytes({"images": images, "categories": categories}))
    return path

"""The validation images a trained model got most wrong: each item of the validation split (rebuilt as
``cnnkit val`` rebuilds it) scored by the task's own loss on it alone (``scoring``), the highest shown as the task
draws its prediction next to the truth; and Grad-CAM maps of the worst few (``cnnkit.explain``)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from cnnkit.errors import CnnkitError
from cnnkit.log import LOGGER
from cnnkit.report.html import Section, figure, note
from cnnkit.report.scoring import item_losses

if TYPE_CHECKING:
    from cnnkit.engine.task import TaskData
    from cnnkit.loading import Model

SHOWN_SIDE = 440  # pictures larger than this are shrunk before they go into the page (pixels)
MAP_ALPHA = 0.35  # the heatmap's weight over the image in the report's overlays (the image still reads under it)
DRAWN = ("class", "mask", "instances")  # prediction keys the tasks that can be compared with a truth give
WORST = "Most wrong validation images"


@dataclass
class Worst:
    """One scored validation item: its place in the split, its loss and what the page shows of it."""

    index: int
    loss: float
    name: str = ""
    image: Image.Image | None = None  # the image as the model saw it
    truth: str = ""  # the truth in words ("true: cat"), or what its picture shows


class Unscored(float):
    """A truth object's score: formats as nothing, so the task's overlay labels it with its class alone (a
    drawn "1.00" reads as a prediction's confidence)."""

    def __format__(self, spec: str) -> str:
        return ""


@contextmanager
def quiet() -> Iterator[None]:
    """cnnkit's messages held back while the split is read again: training said them of the same data."""
    level = LOGGER.level
    LOGGER.setLevel(max(level, logging.ERROR))
    try:
        yield
    finally:
        LOGGER.setLevel(level)


def shown(picture: Image.Image) -> Image.Image:
    """A picture small enough for the page (the page enlarges small ones, pixelated)."""
    if max(picture.size) <= SHOWN_SIDE:
        return picture
    picture = picture.copy()
    picture.thumbnail((SHOWN_SIDE, SHOWN_SIDE), Image.LANCZOS)
    return picture


def truth_picture(model: Model, pil: Image.Image, target: Any) -> tuple[Image.Image | None, str]:
    """The truth of one item drawn as the task draws its predictions (same palette), or said in words:
    a class index -> its name; a mask -> the task's overlay; boxes and masks of objects -> the task's overlay."""
    import torch

    meta, classes = model.meta, list(model.meta.classes)
    if isinstance(target, dict) and "mask" in target and "boxes" not in target:
        target = torch.nn.functional.interpolate(target["mask"][None, None].float(), size=(pil.height, pil.width),
                                                 mode="nearest")[0, 0]
    if isinstance(target, (int, np.integer)) or (isinstance(target, torch.Tensor) and target.ndim == 0):
        k = int(target)
        return None, f"true: {classes[k] if 0 <= k < len(classes) else k}"
    if isinstance(target, torch.Tensor) and target.ndim == 2:
        ids = target.cpu().numpy().astype(np.uint8)
        return model.task.visualise(pil, {"mask": ids, "size": [pil.width, pil.height], "areas": {}}, meta), "truth"
    if isinstance(target, dict) and "boxes" in target:
        from cnnkit.data.rle import encode

        masks = target.get("masks")
        objects = []
        for k, (box, label) in enumerate(zip(target["boxes"].tolist(), target["labels"].tolist())):
            obj = {"class": classes[label - 1] if 0 < label <= len(classes) else str(label), "class_id": label - 1,
                   "score": Unscored(1.0), "box": [float(v) for v in box]}
            if masks is not None and k < len(masks):
                obj["rle"] = encode(masks[k].cpu().numpy().astype(np.uint8))
            objects.append(obj)
        truth = {"size": [pil.width, pil.height], "instances": objects}
        return model.task.visualise(pil, truth, meta), f"truth: {len(objects)} object(s)"
    return None, ""


def item_html(model: Model, worst: Worst, target: Any) -> str:
    """The prediction drawn by the task next to the truth, with the loss and the source in the caption."""
    assert worst.image is not None
    result = model.predict([worst.image])[0]
    truth, said = truth_picture(model, worst.image, target)
    worst.truth = said
    pictures = [figure(shown(result.plot()), "prediction: " + model.task.describe(result))]
    if truth is not None:
        pictures.append(figure(shown(truth), said))
    caption = f'<span class="loss">loss {worst.loss:.3f}</span> · #{worst.index}'
    caption += f" · {_esc(worst.name)}" if worst.name else ""
    caption += f" · {_esc(said)}" if truth is None and said else ""
    return f'<div class="item"><div class="pair">{"".join(pictures)}</div><figcaption>{caption}</figcaption></div>'


def worst_sections(model: Model | None, why: str, weights: Path, images: int, show: int, explain: int
                   ) -> list[Section]:
    """The worst-images section and the explanations section; both say why when they cannot be made."""
    why = why or (_cannot_compare(model, images) if model is not None else "no model")
    if model is None or why:
        return _both_say(why)
    try:
        data, loss_fn = validation_data(model, weights)
    except Exception as e:  # noqa: BLE001 - moved data, another machine: the rest of the report still stands
        return _both_say(f"the validation split could not be read again ({_first_line(e)})")
    worst = [Worst(i, loss) for i, loss in item_losses(model, data, loss_fn, images)]
    if not worst:
        return _both_say("the task's loss gave no value for single validation images")
    names = _source_names(data.val)
    items = []
    for w in worst[:show]:
        image, target = data.val[w.index]
        w.image, w.name = model.to_pil(image), names[w.index] if w.index < len(names) else ""
        items.append(item_html(model, w, target))
    total = len(data.val)  # type: ignore[arg-type]  # a sized dataset
    text = (f"The {len(items)} of {len(worst)} validation images scored (spread over the split's {total}) with the "
            f"highest loss: the task's own loss on each image alone, with the weights of {weights.name}. Left: the "
            "prediction as the task draws it; right (or in the caption): the truth.")
    return [Section("worst", WORST, note(text) + f'<div class="grid">{"".join(items)}</div>'),
            explanations_section(model, worst[:min(explain, show)])]


def _cannot_compare(model: Model, images: int) -> str:
    """Why no image can be ranked (no images asked for, predictions without a truth to compare), or ''."""
    if images <= 0:
        return "no validation images scored (--images 0)"
    try:
        probe = model.predict([Image.new("RGB", (max(8, model.meta.imgsz),) * 2)])[0]
    except CnnkitError as e:  # a task that predicts only from more than an image (a click model's clicks)
        return f"{model.meta.task}'s model does not predict from an image alone ({_first_line(e)})"
    if any(k in probe for k in DRAWN) and len(model.meta.classes) > 1:
        return ""
    return (f"{model.meta.task}'s predictions ({', '.join(sorted(probe)) or 'empty'}) hold no class, mask or "
            "objects to compare with a truth: no single image can be called wrong")


def _both_say(why: str) -> list[Section]:
    return [Section("worst", WORST, note(why)), Section("explain", "Explanations", note(why))]


def explanations_section(model: Model, worst: list[Worst]) -> Section:
    """Grad-CAM maps of the worst images (``cnnkit.explain``): where the model looked for what it predicted."""
    title = "Explanations"
    if not worst:
        return Section("explain", title, note("no explanations asked for"))
    try:
        from cnnkit.explain.core import explain_images
    except ImportError as e:
        return Section("explain", title, note(f"explanations unavailable: cnnkit.explain cannot be imported ({e})"))
    pictures: list[str] = []
    problems: dict[str, list[str]] = {}  # why -> the images it stopped (one line for many)
    for w in worst:
        assert w.image is not None
        try:
            found = explain_images(model, [w.image], "gradcam")[0]
        except Exception as e:  # noqa: BLE001 - one image's failure is said, the others still shown
            problems.setdefault(_first_line(e), []).append(f"#{w.index}")
            continue
        said = f" · {w.truth}" if w.truth.startswith("true") else ""
        shots = [figure(shown(_enlarged(found.image.convert("RGB"))), f"#{w.index}{said}")]
        shots += [figure(shown(_enlarged(found.overlay(i, alpha=MAP_ALPHA))), f"{label} (Grad-CAM at {found.layer})")
                  for i, label in enumerate(found.labels[:3])]
        pictures.append(f'<div class="item explained"><div class="pair maps">{"".join(shots)}</div></div>')
    body = ""
    if pictures:
        body = note(f"Grad-CAM of the {len(worst)} worst images above, for what the model predicted: each image, then "
                    "its maps over it; red marks the regions whose features raised that prediction most.")
        body += f'<div class="grid">{"".join(pictures)}</div>'
    body += "".join(note(f"no explanation for {', '.join(items)}: {why}") for why, items in problems.items())
    return Section("explain", title, body or note("no explanation could be made"))


def validation_data(model: Model, weights: Path) -> tuple[TaskData, Any]:
    """The run's validation split as ``cnnkit val`` rebuilds it (the card's classes, split seed and fraction),
    and the task's loss as training built it."""
    from cnnkit.config import make_config

    cfg = make_config({**model.checkpoint["config"], "resume": False}, origin=str(weights), saved=True)
    with quiet():
        data = model.task.build_data(cfg, meta=model.meta, split="val")
    return data, model.task.build_loss(cfg, data)


def _enlarged(picture: Image.Image, side: int = 224) -> Image.Image:
    """A small map enlarged (nearest) so that it reads in the page."""
    if max(picture.size) >= side:
        return picture
    scale = side / max(picture.size)
    return picture.resize((round(picture.width * scale), round(picture.height * scale)), Image.NEAREST)


def _source_names(dataset: Any) -> list[str]:
    from cnnkit.data.inputs import source_images

    try:
        sources = source_images(dataset)
    except Exception:  # noqa: BLE001 - a name in a caption is a nicety
        return []
    return [f"{Path(s).parent.name}/{Path(s).name}" if isinstance(s, (str, Path)) else "" for s in sources]


def _first_line(error: BaseException) -> str:
    return (str(error).splitlines() or [type(error).__name__])[0][:200]


def _esc(text: str) -> str:
    from html import escape

    return escape(text)

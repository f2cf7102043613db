"""Verify, enrol and search with a loaded recognition model (a checkpoint, an .onnx or a TorchScript file).

What ``cnnkit verify``, ``cnnkit gallery``, ``cnnkit search``, the API and the server share: the model is
checked to be a recognition model, its images to be of the kind it was trained on (an image far from the
training crops in size or colour gives a vector that means nothing: refused unless ``force``), and a gallery
to be the model's own (its weights' fingerprint).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from cnnkit.data.inputs import InputWatch
from cnnkit.errors import CnnkitError
from cnnkit.log import LOGGER
from cnnkit.recognition.gallery import Gallery

TASK = "recognize"
FAR_OFF = ("size", "colour", "grey")  # what InputWatch finds that makes a recognition vector meaningless


def as_model(model: Any) -> Any:
    """A loaded recognition model: ``model`` itself, or the file it names (``cnnkit.load``)."""
    if isinstance(model, (str, Path)):
        from cnnkit.loading import load

        loaded = load(model)
        check_model(loaded, model)
        return loaded
    check_model(model)
    return model


def check_model(model: Any, weights: str | Path = "") -> None:
    """CnnkitError unless ``model`` (a loaded Predictor) was trained to embed identities."""
    if model.meta.task != TASK:
        raise CnnkitError(f"{weights or model.meta.model}: a {model.meta.task} model, not a recognition model; "
                          "verify, galleries and search need one trained with `cnnkit train recognize`")


def fingerprint(model: Any) -> str:
    """The model's weights' fingerprint: saved in an exported file's card, computed from a checkpoint's weights."""
    saved = model.meta.value("fingerprint", "")
    if saved:
        return str(saved)
    from cnnkit.models.embedding import fingerprint as of_weights  # a checkpoint: torch is loaded already

    return of_weights(model.module)


def model_name(model: Any) -> str:
    """What messages call the model: its trunk's name ("resnet18 embedder")."""
    return f"{model.meta.value('backbone', '')} embedder".strip()


def threshold_of(model: Any, given: float | None = None) -> float:
    """``given``, else the threshold (a cosine distance) chosen at training on the held-out identities."""
    if given is not None:
        if not 0.0 <= given <= 2.0:
            raise CnnkitError(f"--threshold {given}: a cosine distance lies between 0 and 2; pass one in that range")
        return float(given)
    saved = model.meta.value("threshold", None)
    if saved is None:
        raise CnnkitError(f"{model.meta.model}: its card holds no verification threshold (it was trained before "
                          "one was saved, or never validated); pass --threshold (a cosine distance, e.g. 0.5)")
    return float(saved)


def as_list(images: Any) -> list[Any]:
    """One image (a path, PIL image or array) or a list or tuple of them, as a list."""
    return list(images) if isinstance(images, (list, tuple)) else [images]


def names_of(images: Sequence[Any]) -> list[str]:
    """A name for each image in messages and galleries: its path, else its place in the list."""
    return [str(im) if isinstance(im, (str, Path)) else f"image {i + 1}" for i, im in enumerate(images)]


def check_images(model: Any, images: Sequence[Any], names: Sequence[str], force: bool = False) -> None:
    """Refuse an image far from the training images in size or colour (unless ``force``): its vector is
    compared with vectors of aligned crops, and would match or miss by accident."""
    if force:
        return
    watch = InputWatch(model.meta)
    for image, name in zip(images, names):
        far = [text for kind, text in watch.far_off(image) if kind in FAR_OFF]
        if far:
            raise CnnkitError(f"{name}: {far[0]}; recognition compares images like those it trained on: crop and "
                              "convert it like them, or pass --force to compare it anyway")
        watch.check(image, name)  # darker or brighter than the training images: warned once


def embed(model: Any, images: Sequence[Any], names: Sequence[str] | None = None, force: bool = False,
          batch: int = 32) -> np.ndarray:
    """``(N, D)`` float32 unit vectors of ``images`` (paths, PIL images or arrays)."""
    names = list(names) if names is not None else names_of(images)
    check_images(model, images, names, force)
    results = model.predict(list(images), batch=batch)
    vectors = np.asarray([np.asarray(r["embedding"], np.float32) for r in results], np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)


def verify(model: Any, a: Any, b: Any, threshold: float | None = None, force: bool = False,
           names: Sequence[str] | None = None) -> dict[str, Any]:
    """Are ``a`` and ``b`` (paths, PIL images or arrays) the same identity? ``model``: a loaded recognition model
    or its file. Returns ``{"same", "distance", "threshold"}`` (cosine distance; ``threshold``: the card's unless
    given). CnnkitError for an image far from the training images (unless ``force``)."""
    model = as_model(model)
    limit = threshold_of(model, threshold)
    va, vb = embed(model, [a, b], names or names_of([a, b]), force)
    distance = float(max(0.0, 1.0 - float(va @ vb)))
    return {"same": distance <= limit, "distance": distance, "threshold": limit}


def open_gallery(model: Any, path: str | Path, create: bool = False) -> Gallery:
    """The gallery at ``path``, checked to be this model's; ``create``: a new one when there is none."""
    model = as_model(model)
    dim, saved = int(model.meta.value("dim", 0)), model.meta.value("threshold", None)
    if create:
        gallery = Gallery.open_or_new(path, fingerprint(model), model_name(model), dim, saved)
    else:
        gallery = Gallery.load(path)
    gallery.check_model(fingerprint(model), model_name(model), path)
    return gallery


def enrol(model: Any, path: str | Path, name: str, images: Any, sources: Sequence[str] | None = None,
          force: bool = False) -> dict[str, Any]:
    """Add ``images`` of identity ``name`` to the gallery file at ``path`` (made when missing), saved
    atomically. Returns ``{"name", "added", "vectors", "identities"}``."""
    images = as_list(images)
    if not images:
        raise CnnkitError(f"{path}: no images given for '{name}'; pass one or more image files")
    model = as_model(model)
    gallery = open_gallery(model, path, create=True)
    names = list(sources) if sources is not None else names_of(images)
    files = [Path(n).name for n in names]
    again = sorted(set(files) & set(gallery.sources_of(name)))
    if again:  # not refused: a file name may repeat across folders; but twice the same image weighs nothing new
        LOGGER.warning("warning: %s: %d of these images (%s%s) are already enrolled as '%s' under the same file name; "
                       "enrolled again", path, len(again), again[0], ", ..." if len(again) > 1 else "", name)
    added = gallery.add(name, embed(model, images, names, force), files)
    gallery.save(path)
    return {"name": name, "added": added, "vectors": len(gallery), "identities": len(gallery.names)}


def search(model: Any, gallery: Gallery | str | Path, images: Any, k: int = 5, threshold: float | None = None,
           names: Sequence[str] | None = None, force: bool = False) -> list[dict[str, Any]]:
    """The ``k`` nearest enrolled identities of each image: ``{"embedding", "matches": [{name, distance,
    match}], "identity"}``, where identity is the nearest within the threshold, else "unknown". ``gallery``: a
    :class:`Gallery` or its file (refused when another model made it)."""
    if k < 1:
        raise CnnkitError(f"--k {k}: ask for at least one identity")
    model, images = as_model(model), as_list(images)
    if not isinstance(gallery, Gallery):
        gallery = open_gallery(model, gallery)
    limit = threshold_of(model, threshold) if threshold is not None or gallery.threshold is None else None
    vectors = embed(model, images, names, force)
    found = gallery.search(vectors, k=k, threshold=limit)
    out = []
    for vector, matches in zip(vectors, found):
        best = matches[0] if matches else None
        identity = best["name"] if best is not None and best["match"] else "unknown"
        out.append({"identity": identity, "matches": matches, "embedding": [float(v) for v in vector]})
    return out

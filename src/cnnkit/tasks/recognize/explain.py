"""What ``cnnkit explain`` maps for a recognition model: the regions that make an image near a reference.

An embedder has no classes to explain; what it computes is nearness. The one target is the cosine
similarity of the image's embedding to the reference image's, which the reference's embedding (computed
once, without gradients) holds fixed: its map shows where the image looks like the reference.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from cnnkit.data.images import image_to_array
from cnnkit.engine.task import ExplainRequest, ExplainTargets
from cnnkit.errors import CnnkitError
from cnnkit.models.trunk import embed_images, trunk_of


def similarity_targets(model: nn.Module, image: Image.Image, request: ExplainRequest) -> ExplainTargets:
    """``image`` as ``predict`` embeds it (resized to the model's side, ``(1, C, S, S)`` float 0..1), with one
    target: its cosine similarity to ``request.reference`` (a PIL image), in -1..1, labelled
    "similarity to reference (0.83)". ``regions``: [None]. CnnkitError without a reference."""
    if request.reference is None:
        raise CnnkitError("recognize explains an image against a reference: give --reference IMAGE")
    meta = model.meta
    device = next(model.parameters()).device
    array = image_to_array(image, meta.in_chans, meta.input_side, meta.pixel_max)
    inputs = torch.from_numpy(array).permute(2, 0, 1)[None].float().div(255.0).to(device)
    reference = F.normalize(embed_images(model, [request.reference]).to(device), dim=1)[0]
    score = similarity_score(model, reference)
    with torch.no_grad():
        now = float(score(inputs)[0, 0])
    return ExplainTargets(inputs=inputs, labels=[f"similarity to reference ({now:.2f})"], score=score,
                          regions=[None], original_size=(image.height, image.width))


def embedding(model: Any, x: torch.Tensor) -> torch.Tensor:
    """``(B, C, S, S)`` float 0..1 -> ``(B, D)`` embeddings, with gradients: ``embed_images``'s computation
    (the network's own ``embedding``, prewhitening and flip-averaging included; else its trunk's mean)."""
    own = getattr(model.net, "embedding", None)
    x = model.normalize(x)
    return (own(x) if callable(own) else trunk_of(model.net).module(x).mean((2, 3))).float()


def similarity_score(model: nn.Module, reference: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
    """``(B, C, S, S)`` float 0..1 -> ``(B, 1)``: the cosine similarity of each image's embedding to the unit
    vector ``reference`` ``(D,)``."""
    def score(x: torch.Tensor) -> torch.Tensor:
        return (F.normalize(embedding(model, x.to(reference.device)), dim=1) @ reference)[:, None]
    return score

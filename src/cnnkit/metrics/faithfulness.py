"""How faithful a saliency map is to the model it explains: deletion and insertion curves, the pointing game.

- Deletion and insertion (Petsiuk, Das and Saenko, "RISE: Randomized Input Sampling for Explanation of
  Black-box Models", BMVC 2018, section 4.1): remove the pixels most salient first, replacing them by a
  baseline (zero, black: the paper's choice for deletion), and watch the model's score fall; or start from
  a blurred copy of the image and put the original pixels back, most salient first, and watch it rise. The
  area under each curve (trapezoids over the fraction of pixels changed, 0..1) sums it up: a faithful map
  has a small deletion AUC and a large insertion AUC.
- ROAD's fill for deletion (Rong, Leemann, Borisov, Kasneci and Kasneci, "A Consistent and Efficient
  Evaluation Strategy for Attribution Methods", ICML 2022): black pixels scattered over a small image are
  salt noise the model never saw, and can destroy its score faster than removing the object does (Hooker et
  al., ROAR, NeurIPS 2019, make the same point). ``fill="road"`` replaces each removed pixel by the noisy
  linear interpolation of its neighbours (pytorch-grad-cam's ``NoisyLinearImputer``, the authors' code), so
  that what is left looks like an image and only the information in the removed pixels is gone.
- The pointing game (Zhang, Bargal, Lin, Brandt, Shen and Sclaroff, "Top-down Neural Attention by
  Excitation Backprop", ECCV 2016 / IJCV 2018): a hit when the map's maximum lies on the object, within a
  tolerance (15 px in the paper, for images of a few hundred pixels).
- Baselines that every map should beat: uniform noise (:func:`random_map`) and a centred Gaussian
  (:func:`centre_map`, the centre bias of photographs and of the built-in shapes).

Maps are ``(H, W)`` arrays of any real values (only their order counts for the curves); images are
``(1, C, H, W)`` float tensors in 0..1. torch and numpy (and pytorch-grad-cam's imputer, for ROAD).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

from cnnkit.errors import CnnkitError

Score = Callable[[torch.Tensor], torch.Tensor]  # (B, C, H, W) float 0..1 -> (B,) scores
FILLS = ("black", "road")


def random_map(shape: tuple[int, int], seed: int = 0) -> np.ndarray:
    """Uniform noise in [0, 1), ``(H, W)`` float32: the map that knows nothing (same ``seed``, same map)."""
    return np.random.default_rng(seed).random(shape, dtype=np.float32)


def centre_map(shape: tuple[int, int]) -> np.ndarray:
    """An isotropic Gaussian centred on the image, sigma a quarter of the shorter side, peak 1: ``(H, W)``
    float32. The map of a model that only knows objects tend to be in the middle."""
    h, w = shape
    sigma = min(h, w) / 4
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    d2 = (yy - (h - 1) / 2) ** 2 + (xx - (w - 1) / 2) ** 2
    return np.exp(-d2 / (2 * sigma**2)).astype(np.float32)


def blur(image: torch.Tensor, sigma: float) -> torch.Tensor:
    """``(N, C, H, W)`` -> the same shape, blurred by a separable Gaussian of ``sigma`` px (edges replicated,
    so any sigma suits any image size; kernel radius 3 sigma, at most the image's longer side)."""
    if sigma <= 0:
        return image.clone()
    radius = max(1, min(math.ceil(3 * sigma), max(image.shape[-2:])))
    x = torch.arange(-radius, radius + 1, dtype=image.dtype, device=image.device)
    kernel = torch.exp(-(x**2) / (2 * sigma**2))
    kernel = kernel / kernel.sum()
    c = image.shape[1]
    out = F.pad(image, (radius, radius, radius, radius), mode="replicate")
    out = F.conv2d(out, kernel.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    return F.conv2d(out, kernel.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)


def pixel_order(saliency: np.ndarray, seed: int = 0) -> np.ndarray:
    """``(H, W)`` map -> ``(H, W)`` int64 ranks: 0 for the most salient pixel. Ties are broken by a random
    permutation (``seed``), so that a flat map or a plateau is not taken in raster order, which would
    delete the top rows first and favour or punish a model by where its object lies."""
    flat = np.asarray(saliency, dtype=np.float64).ravel()
    tiebreak = np.random.default_rng(seed).permutation(flat.size)
    order = np.lexsort((tiebreak, -flat))  # the last key sorts first: saliency descending, then the permutation
    rank = np.empty(flat.size, dtype=np.int64)
    rank[order] = np.arange(flat.size)
    return rank.reshape(np.shape(saliency))


def auc(fractions: np.ndarray, curve: np.ndarray) -> float:
    """Trapezoid area under ``curve`` over ``fractions`` (increasing, 0..1)."""
    x, y = np.asarray(fractions, dtype=np.float64), np.asarray(curve, dtype=np.float64)
    return float(np.sum((y[1:] + y[:-1]) / 2 * np.diff(x)))


def road_fill(image: torch.Tensor, removed: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """``image`` ``(1, C, H, W)`` with the pixels of ``removed`` ``(H, W)`` bool imputed as ROAD does (Rong et
    al., ICML 2022): each the weighted mean of its 8 neighbours (a sparse linear system over all removed
    pixels, pytorch-grad-cam's ``NoisyLinearImputer``) plus Gaussian noise of sigma 0.01 (``seed``). With every
    pixel removed nothing is left to interpolate from: the image's mean colour. Same shape, float."""
    from pytorch_grad_cam.metrics.road import NoisyLinearImputer

    removed = removed.bool().cpu()
    source = image[0].detach().float().cpu()
    if not removed.any():
        return image.float().clone()
    if removed.all():
        return source.mean((1, 2), keepdim=True).expand_as(source).unsqueeze(0).to(image.device)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)  # the imputer's noise comes from torch's global generator
        filled = NoisyLinearImputer(noise=0.01)(source, (~removed).float())
    return filled.clamp(0, 1).unsqueeze(0).to(image.device)


def _curve(score: Score, start: torch.Tensor, end: torch.Tensor | list[torch.Tensor], rank: torch.Tensor,
           counts: list[int], batch: int) -> np.ndarray:
    """Scores of ``start`` with its ``n`` first-ranked pixels taken from ``end``, for each ``n`` of ``counts``
    (``end``: one image, or one per count)."""
    values: list[np.ndarray] = []
    for i in range(0, len(counts), batch):
        n = torch.tensor(counts[i:i + batch], device=rank.device).view(-1, 1, 1, 1)
        changed = rank.view(1, 1, *rank.shape) < n  # (b, 1, H, W)
        ends = torch.cat(end[i:i + batch]) if isinstance(end, list) else end
        images = torch.where(changed, ends, start)
        out = score(images)
        if out.numel() != len(images):
            raise CnnkitError(f"score: expected one value per image ({len(images)}), got shape "
                              f"{tuple(out.shape)}; return a (B,) tensor")
        values.append(out.detach().float().reshape(-1).cpu().numpy())
    return np.concatenate(values)


def deletion_insertion(score: Score, image: torch.Tensor, saliency: np.ndarray, steps: int = 32,
                       batch: int = 16, blur_sigma: float | None = None, seed: int = 0,
                       fill: str = "black") -> dict:
    """The deletion and insertion curves of one map (Petsiuk et al., RISE, BMVC 2018) and their AUCs.

    ``score``: ``(B, C, H, W)`` float 0..1 -> ``(B,)`` the model's score for the explained target (a class's
    probability, say: bounded scores make AUCs comparable across images). ``image``: ``(1, C, H, W)`` float
    0..1; ``saliency``: ``(H, W)``, higher is more important. The curves have ``steps + 1`` points, after
    ``round(k * H * W / steps)`` pixels (k = 0..steps), most salient first, ties at random (``seed``).
    Deletion sets those pixels to 0 (``fill="black"``, RISE's choice) or to ROAD's noisy linear imputation
    from the pixels left (``fill="road"``, :func:`road_fill`; one sparse solve per point, so slower);
    insertion starts from ``blur(image, blur_sigma)`` (None: an eighth of the shorter side, which removes the
    shapes of small images as RISE's blur does at 224 px) and puts those pixels back. Evaluated without
    gradients, ``batch`` images at a time.

    Returns ``{"deletion_auc", "insertion_auc"}`` (floats, in the score's units: 0..1 for probabilities),
    ``"fractions"`` ``(steps + 1,)`` the fraction of pixels changed, and the curves ``"deletion"``,
    ``"insertion"`` ``(steps + 1,)``. CnnkitError for shapes that do not match, steps/batch below 1 or an
    unknown ``fill``.
    """
    if image.ndim != 4 or image.shape[0] != 1:
        raise CnnkitError(f"image: expected one image (1, C, H, W), got shape {tuple(image.shape)}")
    h, w = image.shape[-2:]
    if np.shape(saliency) != (h, w):
        raise CnnkitError(f"saliency: shape {np.shape(saliency)} differs from the image's {(h, w)}; "
                          "resize the map to the image")
    if steps < 1 or batch < 1:
        raise CnnkitError(f"steps {steps}, batch {batch}: both must be 1 or more")
    if not np.all(np.isfinite(saliency)):
        raise CnnkitError("saliency: holds NaN or infinite values")
    if fill not in FILLS:
        raise CnnkitError(f"fill {fill!r}: unknown; choose from {', '.join(FILLS)}")
    sigma = min(h, w) / 8 if blur_sigma is None else blur_sigma
    pixels = h * w
    counts = [round(k * pixels / steps) for k in range(steps + 1)]
    rank = torch.from_numpy(pixel_order(saliency, seed)).to(image.device)
    image = image.float()
    with torch.no_grad():
        removed: torch.Tensor | list[torch.Tensor] = torch.zeros_like(image)
        if fill == "road":
            removed = [road_fill(image, rank < n, seed) for n in counts]
        deletion = _curve(score, image, removed, rank, counts, batch)
        insertion = _curve(score, blur(image, sigma), image, rank, counts, batch)
    fractions = np.asarray(counts, dtype=np.float64) / pixels
    return {"deletion_auc": auc(fractions, deletion), "insertion_auc": auc(fractions, insertion),
            "fractions": fractions, "deletion": deletion, "insertion": insertion}


def pointing_game(saliency: np.ndarray, mask: np.ndarray, tolerance: int = 0) -> bool:
    """Whether the map's maximum points at the object (Zhang et al., Excitation Backprop, IJCV 2018).

    ``saliency`` ``(H, W)``; ``mask`` ``(H, W)`` bool, the object's pixels. The maximum is the first
    ``argmax`` in row-major order (of tied maxima, the top-left-most; a flat map points at pixel (0, 0)). A
    hit when a mask pixel lies within ``tolerance`` px (Euclidean) of it: 0 (the default, for small
    synthetic images) asks for the pixel itself; the paper used 15 px. CnnkitError for shapes that differ, a
    negative tolerance or an empty mask (the paper skips images without the object: so should the caller).
    """
    saliency, mask = np.asarray(saliency), np.asarray(mask, dtype=bool)
    if saliency.ndim != 2 or saliency.shape != mask.shape:
        raise CnnkitError(f"pointing game: saliency {saliency.shape} and mask {mask.shape} must be one (H, W)")
    if tolerance < 0:
        raise CnnkitError(f"pointing game: tolerance {tolerance} px must be 0 or more")
    if not mask.any():
        raise CnnkitError("pointing game: the mask is empty; leave out images without the object")
    y, x = divmod(int(np.argmax(saliency)), saliency.shape[1])
    if tolerance == 0:
        return bool(mask[y, x])
    ys, xs = np.nonzero(mask)
    return bool(np.min((ys - y) ** 2 + (xs - x) ** 2) <= tolerance**2)

"""Segments learned from the images themselves: no labels, or a few seeds per class.

The method of Kim, Kanezaki and Tanaka ("Unsupervised learning of image segmentation based on
differentiable feature clustering", IEEE TIP 2020): a small CNN's response is trained towards its own
argmax (cross-entropy) with an L1 penalty on the response's differences between neighbouring pixels,
so that pixels of similar features and position fall into one segment and the number of segments
shrinks as training goes; seeds add a cross-entropy on the seeded pixels.

What cnnkit changes, for speed and for folders (measured in benchmarks/grow.py):
- one network per call, trained on all its images together at a reduced resolution (``side``), so that a
  segment id means the same thing in every image (without seeds, k-means of its responses over the folder
  makes the segments, as PiCIE clusters features shared by a data set) and the cost per image is a
  fraction of a second;
- dilated convolutions widen the receptive field at no cost; the response is upsampled, averaged within
  SLIC superpixels of the full image (edges come back) and its softmax is the confidence;
- seeds are hard constraints: a seeded pixel keeps its class in the output, whatever the network says.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from cnnkit.grow.refine import to_full_size

IGNORE = -100  # cross_entropy's ignore value: pixels without a seed


@dataclass(frozen=True)
class GrowOptions:
    """How segments are learned. Units in the comments; side, continuity, normalise, overcluster and passes
    were chosen on 10-20 images of CamVid val and DSB2018 (benchmarks/RESULTS.md), the rest are TIP 2020's or
    plain choices."""

    max_segments: int = 8  # segments at most, without seeds (the k-means of the responses keeps this many or fewer)
    # without seeds, training stops once a batch uses this many times max_segments or fewer (TIP 2020 stops at
    # max_segments: small segments, nuclei, vanish before the clustering can keep them)
    overcluster: float = 2.0
    side: int = 128  # px, the long side images are trained and labelled at (full size comes back by superpixels)
    channels: int = 32  # feature channels of the small CNN (TIP 2020: 100; 32 keeps a step of 8 images ~0.2 s)
    # a folder of N images trains max(iterations, passes * N / batch) steps (without seeds, often fewer: it
    # stops early); 200 steps alone saw CamVid's 367 training images 4 times each and labelled them worse
    iterations: int = 200  # steps, at least
    passes: int = 16  # times each image is seen, for large folders
    batch: int = 8  # images per step, of one shape
    lr: float = 0.1  # SGD learning rate, momentum 0.9 (TIP 2020's)
    continuity: float = 1.0  # weight of the L1 spatial-continuity term (TIP 2020's mu)
    self_weight: float = 0.3  # with seeds: weight of the own-argmax term beside the seeds' cross-entropy
    coords: bool = True  # with seeds: the pixel's position as two input channels (scenes have a layout)
    normalise: str = "image"  # "folder": one mean and std for all the images; "image": each its own
    temperature: float = 1.0  # without seeds: softness of the confidence, in distance units of the response
    refine: bool = True  # average the response within SLIC superpixels of the full image (sharper edges)
    seed: int = 0  # random seed (initial weights, batch order)

    def __post_init__(self) -> None:
        if not 2 <= self.max_segments <= 254:  # 255 marks the uncertain pixels of the masks written
            raise ValueError("max_segments must be 2..254")
        if self.normalise not in ("image", "folder"):
            raise ValueError("normalise is 'image' or 'folder'")
        if self.side < 16 or self.channels < 4 or self.iterations < 1 or self.batch < 1 or self.passes < 0:
            raise ValueError("side >= 16, channels >= 4, iterations >= 1, batch >= 1 and passes >= 0")


class GrowNet(nn.Module):
    """Conv-BN-ReLU x3 (dilations 1, 2, 4) then a 1x1 conv and BN: ``(B, in, H, W) -> (B, out, H, W)``."""

    def __init__(self, in_channels: int, channels: int, out_channels: int):
        super().__init__()
        layers: list[nn.Module] = []
        for i, dilation in enumerate((1, 2, 4)):
            layers += [nn.Conv2d(in_channels if i == 0 else channels, channels, 3, padding=dilation,
                                 dilation=dilation), nn.BatchNorm2d(channels), nn.ReLU(inplace=True)]
        # the response's BN keeps every channel in play, without it one channel wins at once (TIP 2020)
        layers += [nn.Conv2d(channels, out_channels, 1), nn.BatchNorm2d(out_channels)]
        self.body = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


def continuity_loss(response: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference of the response between vertical and horizontal neighbours (TIP 2020)."""
    dy = (response[:, :, 1:, :] - response[:, :, :-1, :]).abs().mean()
    dx = (response[:, :, :, 1:] - response[:, :, :, :-1]).abs().mean()
    return dy + dx


def small_size(height: int, width: int, side: int) -> tuple[int, int]:
    """The working size: the long side at ``side`` px (never enlarged), aspect kept."""
    scale = min(1.0, side / max(height, width))
    return max(8, round(height * scale)), max(8, round(width * scale))


def seeds_small(seeds: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A full-size seed map (0 = none, k = class k-1) at the working size, every seed kept: a one-pixel
    seed would vanish in a plain resize. Returns class indices, IGNORE where unseeded."""
    out = np.full(size, IGNORE, np.int64)
    ys, xs = np.nonzero(seeds)
    sy, sx = size[0] / seeds.shape[0], size[1] / seeds.shape[1]
    out[np.minimum((ys * sy).astype(int), size[0] - 1), np.minimum((xs * sx).astype(int), size[1] - 1)] = \
        seeds[ys, xs] - 1
    return out


def prepare(images: Sequence[np.ndarray], seeds: Sequence[np.ndarray | None] | None,
            options: GrowOptions) -> tuple[list[torch.Tensor], list[torch.Tensor | None]]:
    """Images -> standardised ``(1, C, h, w)`` inputs at the working size (plus position channels with
    seeds), and the seeds at that size as ``(1, h, w)`` targets."""
    small = [F.interpolate(torch.from_numpy(np.array(im, dtype=np.uint8)).permute(2, 0, 1)[None].float() / 255,
                           size=small_size(im.shape[0], im.shape[1], options.side), mode="area") for im in images]
    if options.normalise == "image":  # stains and exposures differ from image to image
        inputs = [(s - s.mean(dim=(2, 3), keepdim=True)) / (s.std(dim=(2, 3), keepdim=True) + 1e-3) for s in small]
    else:
        pixels = torch.cat([s.flatten(2) for s in small], dim=2)
        mean, std = pixels.mean(dim=2, keepdim=True)[..., None], pixels.std(dim=2, keepdim=True)[..., None] + 1e-3
        inputs = [(s - mean) / std for s in small]
    if seeds is not None and options.coords:
        inputs = [torch.cat([x, position(x.shape[2], x.shape[3])], dim=1) for x in inputs]
    targets: list[torch.Tensor | None] = [None] * len(images)
    if seeds is not None:
        targets = [None if s is None else torch.from_numpy(seeds_small(s, tuple(x.shape[2:])))[None]
                   for s, x in zip(seeds, inputs)]
    # channels-last: twice as fast on a CPU for these small convolutions
    return [x.contiguous(memory_format=torch.channels_last) for x in inputs], targets


def position(height: int, width: int) -> torch.Tensor:
    """``(1, 2, h, w)``: y and x from -1 to 1 (top-left to bottom-right)."""
    ys = torch.linspace(-1, 1, height)[:, None].expand(height, width)
    xs = torch.linspace(-1, 1, width)[None, :].expand(height, width)
    return torch.stack([ys, xs])[None]


def batches(inputs: Sequence[torch.Tensor], batch: int, rng: random.Random) -> list[list[int]]:
    """One epoch of batches of image indices, each of one working size, shuffled."""
    by_size: dict[tuple[int, ...], list[int]] = {}
    for i, x in enumerate(inputs):
        by_size.setdefault(tuple(x.shape[2:]), []).append(i)
    out = []
    for group in by_size.values():
        rng.shuffle(group)
        out += [group[i:i + batch] for i in range(0, len(group), batch)]
    rng.shuffle(out)
    return out


def train(net: GrowNet, inputs: list[torch.Tensor], targets: list[torch.Tensor | None], seeded: bool,
          options: GrowOptions) -> int:
    """Train ``net`` on the folder; returns the steps taken. Without seeds, stops once a batch's response
    uses ``overcluster * max_segments`` channels or fewer (TIP 2020's stopping rule, at a higher count)."""
    optimizer = torch.optim.SGD(net.parameters(), lr=options.lr, momentum=0.9)
    rng, step = random.Random(options.seed), 0
    steps = max(options.iterations, -(-options.passes * len(inputs) // options.batch))
    net.train()
    while step < steps:
        for group in batches(inputs, options.batch, rng):
            x = torch.cat([inputs[i] for i in group])
            response = net(x)
            labels = response.argmax(dim=1)
            loss = options.continuity * continuity_loss(response)
            own = F.cross_entropy(response, labels)
            if seeded:
                target = torch.cat([t if t is not None else torch.full_like(labels[:1], IGNORE)
                                    for t in (targets[i] for i in group)])
                if (target != IGNORE).any():
                    loss = loss + seed_loss(response, target)
                loss = loss + options.self_weight * own
            else:
                loss = loss + own
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step += 1
            if (not seeded and step % 5 == 0 and len(labels.unique()) <= options.overcluster * options.max_segments) \
                    or step >= steps:
                return step
    return step


def seed_loss(response: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Cross-entropy on the seeded pixels, each class weighted alike: one click per nucleus against a few
    background seeds must not make everything a nucleus."""
    per_pixel = F.cross_entropy(response, target, ignore_index=IGNORE, reduction="none")
    classes = [c for c in target.unique().tolist() if c != IGNORE]
    return torch.stack([per_pixel[target == c].mean() for c in classes]).mean()


@torch.no_grad()
def recalibrate(net: GrowNet, inputs: Sequence[torch.Tensor]) -> None:
    """Batch-norm statistics of the final weights over every image (the running ones trail the training)."""
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.reset_running_stats()
            m.momentum = None  # a cumulative average over the pass
    net.train()
    for x in inputs:
        net(x)
    net.eval()


def cluster(responses: list[torch.Tensor], limit: int, seed: int, sample: int = 60_000) -> torch.Tensor:
    """Segment centres shared by the folder (PiCIE clusters a data set's features): k-means of the response
    vectors of pixels drawn from every image, started from the network's own segments (their mean
    responses, at most ``limit``, farthest-first); centres left with under 0.5% of the pixels are dropped,
    so the count is found, not fixed. Returns ``(K, D)``."""
    pixels = torch.cat([r[0].flatten(1).T for r in responses])
    generator = torch.Generator().manual_seed(seed)
    if len(pixels) > sample:
        pixels = pixels[torch.randperm(len(pixels), generator=generator)[:sample]]
    own = pixels.argmax(dim=1)
    counts = torch.bincount(own, minlength=pixels.shape[1])
    order = [int(c) for c in counts.argsort(descending=True) if counts[c] > 0]
    means = torch.stack([pixels[own == c].mean(dim=0) for c in order])
    chosen = [0]  # the largest segment, then each time the one farthest from those chosen (small, distinct
    while len(chosen) < min(limit, len(means)):  # segments, nuclei, survive; near-copies of a large one do not)
        far = torch.cdist(means, means[chosen]).min(dim=1).values
        far[chosen] = -1
        chosen.append(int(far.argmax()))
    centres = means[chosen]
    for _ in range(20):
        nearest = torch.cdist(pixels, centres).argmin(dim=1)
        kept = [k for k in range(len(centres)) if (nearest == k).sum() >= max(1, len(pixels) // 200)]
        kept = kept or [int(torch.bincount(nearest).argmax())]  # hundreds of even, small segments: keep one
        centres = torch.stack([pixels[nearest == k].mean(dim=0) for k in kept])
    return centres


def grow_images(images: Sequence[np.ndarray], seeds: Sequence[np.ndarray | None] | None = None,
                n_classes: int = 0, options: GrowOptions | None = None) -> list[tuple[np.ndarray, np.ndarray]]:
    """Label every pixel of ``images`` from the images themselves.

    images: ``(H, W, 3)`` uint8 arrays (sizes may differ). seeds: None (unsupervised) or one ``(H, W)`` int
    map per image (0 = unseeded, k = class k-1; None for an image without seeds). n_classes: the class count
    with seeds (default: the largest seed value). Returns per image ``(labels, confidence)``: ``(H, W)`` int64
    class indices (with seeds) or segment ids 0..K-1 shared by all the images, numbered by area over the
    folder (unsupervised), and ``(H, W)`` float32 confidence in [0, 1] (1 on seeds).
    """
    options = options or GrowOptions()
    seeded = seeds is not None and any(s is not None and s.any() for s in seeds)
    if seeded:
        n_classes = max(n_classes, max(int(s.max()) for s in seeds if s is not None))  # type: ignore[union-attr]
    torch.manual_seed(options.seed)
    inputs, targets = prepare(images, seeds if seeded else None, options)
    out_channels = n_classes if seeded else max(options.channels, round(options.overcluster * options.max_segments) + 1)
    net = GrowNet(inputs[0].shape[1], options.channels, out_channels).to(memory_format=torch.channels_last)
    train(net, inputs, targets, seeded, options)
    recalibrate(net, inputs)
    with torch.no_grad():
        responses = [net(x) for x in inputs]
    if seeded:
        # a class seeded in no image labels no pixel: the network never learned what it looks like
        unseeded = [k for k in range(n_classes) if not any(s is not None and (s == k + 1).any() for s in seeds or [])]
        scores = [r[0] for r in responses]
        for score in scores:
            score[unseeded] = float("-inf")
    else:
        centres = cluster(responses, options.max_segments, options.seed)
        scores = [-torch.cdist(r[0].flatten(1).T, centres).T.reshape(len(centres), *r.shape[2:]) / options.temperature
                  for r in responses]
    per_image = list(seeds) if seeded and seeds is not None else [None] * len(images)
    results = []
    for image, score, seed in zip(images, scores, per_image):
        probs = torch.softmax(score, dim=0)
        labels, confidence = to_full_size(probs.numpy(), image, options.refine)
        if seed is not None:
            labels[seed > 0] = seed[seed > 0] - 1  # seeds are hard constraints
            confidence[seed > 0] = 1.0
        results.append((labels, confidence))
    return results if seeded else by_area(results)


def by_area(grown: list[tuple[np.ndarray, np.ndarray]]) -> list[tuple[np.ndarray, np.ndarray]]:
    """Segment ids renumbered 0..K-1 by their area over the folder, ids no pixel kept left out."""
    top = max(int(labels.max()) for labels, _ in grown) + 1
    area = sum(np.bincount(labels.ravel(), minlength=top) for labels, _ in grown)
    order = [int(i) for i in np.argsort(-area, kind="stable") if area[i] > 0]
    new = np.zeros(top, np.int64)
    new[order] = np.arange(len(order))
    return [(new[labels], confidence) for labels, confidence in grown]

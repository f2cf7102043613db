"""Recognition by embedding: a CNN maps images to unit vectors in which identity is nearness, so that people,
products or animals never seen in training are verified and searched (the task's registration; torch-free).

``cnnkit train recognize --data FOLDERS`` (one folder per identity, or any classification layout) trains the
trunk of any registered model with a metric-learning loss (``cnnkit.models.embedding``); validation holds
out whole identities, and its figures are open-set (``cnnkit.metrics.verification``). The distance
threshold for a target false accept rate, chosen on those held-out identities, goes into the model card;
``cnnkit verify``, ``cnnkit gallery`` and ``cnnkit search`` (``cnnkit.recognition``) use it.
"""

from __future__ import annotations

from dataclasses import dataclass

from cnnkit.options import NoOptions, option
from cnnkit.tasks.common import augment_option, freeze_epochs_option
from cnnkit.tasks.registry import DemoSpec, TaskSpec


@dataclass(frozen=True)
class RecognizeTrainOptions:
    loss: str = option("arcface", "metric-learning loss (pytorch-metric-learning): arcface or cosface (an additive "
                                  "angular or cosine margin on class centres), multisimilarity or triplet (over the "
                                  "pairs a miner picks in each batch)",
                       choices=("arcface", "cosface", "multisimilarity", "triplet"))
    dim: int = option(128, "embedding size", unit="values", low=2, high=4096)
    normalise: bool = option(True, "scale embeddings to unit length (cosine distance compares directions)")
    prewhiten: bool = option(True, "standardise each image (zero mean, unit variance: FaceNet's prewhitening), so "
                                   "that the brightness and contrast of a whole image do not count")
    flip_average: bool = option(True, "embed an image as the mean of its and its mirror image's embeddings (as "
                                      "face recognition is evaluated); off for identities that mirroring changes")
    margin: float = option(0.0, "the loss's margin; 0 = its published default (ArcFace 28.6 degrees, CosFace 0.35, "
                                "multi-similarity's miner 0.1, triplet 0.1)", low=0.0)
    scale: float = option(0.0, "ArcFace/CosFace logit scale; 0 = 64, as published", low=0.0)
    target_far: float = option(0.001, "false accept rate at which the verification threshold is chosen on the "
                                      "held-out identities (saved in the model card)", unit="fraction", low=1e-6,
                               below=1.0)
    relight: float = option(3.0, "training augmentation of lighting: a random illumination ramp across each image, "
                                 "up to exp(+-relight) from side to side, and a random gamma; 0 = none", low=0.0,
                            high=5.0)
    augment: str = augment_option()
    freeze_epochs: int = freeze_epochs_option()


# about a minute on 2 CPU cores; not in a plain `cnnkit demo` (`cnnkit demo --task recognize`)
# relight 0: a synthetic identity is its pattern of brightness, which relighting would change
DEMO = DemoSpec(recipe={"model": "fastnet_small", "imgsz": 32, "epochs": 6, "batch": 32, "dim": 32, "relight": 0.0},
                about="24 synthetic identities, 6 held out and never trained on", shows="identities", default=False)

SPEC = TaskSpec(
    name="recognize", summary="recognition by embedding: verify and search identities never seen in training",
    task="cnnkit.tasks.recognize.task:RecognizeTask", view="cnnkit.tasks.recognize.view:RecognizeView",
    layouts="cnnkit.tasks.recognize.layouts:LAYOUTS", runner="cnnkit.tasks.recognize.runner:RecognizeRunner",
    options=NoOptions, train_options=RecognizeTrainOptions, demo=DEMO,
    # AdamW as in pytorch-metric-learning's examples: the margin losses' class centres move with the embeddings
    defaults={"model": "resnet18", "val_split": 0.25, "monitor": "map", "optimizer": "adamw", "lr": 1e-3,
              "weight_decay": 5e-4, "schedule": "cosine", "batch": 64},
    args={"any_model": True},  # the trunk of a model of any task learns the embedding
    model_kind="embedder",
    next_steps=("cnnkit verify --weights {weights} A.jpg B.jpg",
                "cnnkit gallery add gallery.npz --weights {weights} --name PERSON IMAGES...",
                "cnnkit search --weights {weights} --gallery gallery.npz IMAGES..."))

"""Self-supervised pretraining: an encoder learns from images without labels (the task's registration;
torch-free).

``cnnkit train pretrain --data FOLDER --model M`` trains the trunk of any registered model M with
SimCLR, VICReg or a masked autoencoder (``cnnkit.models.selfsup``); ``--pretrained`` then starts any
classify, segment, instance or detect model of the same encoder from it (``cnnkit.models.trunk``).
Its predictions are embeddings: one vector per image (``cnnkit embed``).
"""

from __future__ import annotations

from dataclasses import dataclass

from cnnkit.options import NoOptions, option
from cnnkit.tasks.registry import DemoSpec, TaskSpec


@dataclass(frozen=True)
class PretrainTrainOptions:
    method: str = option("simclr", "self-supervised method: simclr or vicreg (two augmented views agree), or mae "
                                   "(masked autoencoder: rebuild blanked patches)", choices=("simclr", "vicreg", "mae"))
    val: str = option("", "labelled images (class folders, CSV, IDX) scored by k-NN on the embedding after each "
                          "epoch; empty = a held-out part of --data, loss and spread only")


DEMO = DemoSpec(recipe={"data": "shapes:2000", "val": "shapes:300", "model": "fastnet_small", "imgsz": 32,
                        "epochs": 5},
                about="the classify scenes without their labels, then 100 with", shows="embedding")

SPEC = TaskSpec(
    name="pretrain", summary="learn an encoder from unlabelled images (SimCLR, VICReg, masked autoencoder)",
    task="cnnkit.tasks.pretrain.task:PretrainTask", view="cnnkit.tasks.pretrain.view:EmbeddingView",
    layouts="cnnkit.tasks.pretrain.layouts:LAYOUTS", options=NoOptions, train_options=PretrainTrainOptions, demo=DEMO,
    # AdamW at 1e-3 as SimCLR's and VICReg's small-batch reproductions; SGD at 0.05 collapses VICReg
    defaults={"model": "fastnet_small", "val_split": 0.05, "monitor": "val_loss", "optimizer": "adamw", "lr": 1e-3,
              "weight_decay": 1e-5, "schedule": "cosine", "batch": 128},
    args={"any_model": True},  # the trunk of a model of any task is pretrained
    model_kind="pretrainer",  # the network it trains (selfsup) around that trunk
    next_steps=("cnnkit embed --weights {weights} {data} --clusters 10 --map tsne",
                "cnnkit train {model_task} --data LABELLED_DATA --model {model} --pretrained {weights}"))

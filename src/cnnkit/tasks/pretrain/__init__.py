"""Self-supervised pretraining: an encoder learns from images without labels (the task's registration;
torch-free).

``cnnkit train pretrain --data FOLDER --model M`` trains the trunk of any registered model M with
SimCLR, VICReg or a masked autoencoder (``cnnkit.models.selfsup``); ``--pretrained`` then starts any
classify, segment, instance or detect model of the same encoder from it (``cnnkit.models.trunk``).
Its predictions are embeddings: one vector per image (``cnnkit embed``).
"""

from __future__ import annotations

from cnnkit.options import NoOptions
from cnnkit.tasks.registry import TaskSpec

SPEC = TaskSpec(
    name="pretrain", summary="learn an encoder from unlabelled images (SimCLR, VICReg, masked autoencoder)",
    task="cnnkit.tasks.pretrain.task:PretrainTask", view="cnnkit.tasks.pretrain.view:EmbeddingView",
    layouts="cnnkit.tasks.pretrain.layouts:LAYOUTS", options=NoOptions, config=("method", "val"),
    # AdamW at 1e-3 as SimCLR's and VICReg's small-batch reproductions; SGD at 0.05 collapses VICReg
    defaults={"model": "fastnet_small", "val_split": 0.05, "monitor": "val_loss", "method": "simclr",
              "optimizer": "adamw", "lr": 1e-3, "weight_decay": 1e-5, "schedule": "cosine", "batch": 128},
    args={"any_model": True},  # the trunk of a model of any task is pretrained
    model_kind="pretrainer",  # the network it trains (selfsup) around that trunk
    next_steps=("cnnkit embed --weights {weights} {data} --clusters 10 --map tsne",
                "cnnkit train classify --data LABELLED_FOLDER --model {model} --pretrained {weights}"))

"""Pretraining's output side, without torch: an embedding per image (the view that recognize shares, in
``cnnkit.tasks.common``)."""

from __future__ import annotations

from cnnkit.tasks.common import EmbeddingView as EmbeddingView

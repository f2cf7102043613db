"""Models: one registry; importing this package registers every built-in model."""

from cnnkit.models import (  # noqa: F401  (registration)
    basic_cnn,
    click,
    coco_detection,
    detection,
    embedding,
    fastnet,
    segmentation,
    selfsup,
    timm_family,
    torchvision_models,
)
from cnnkit.models.registry import accepts, create_model, get_entry, list_models, register_model

__all__ = ["accepts", "create_model", "get_entry", "list_models", "register_model"]

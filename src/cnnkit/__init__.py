"""cnnkit: train, evaluate, predict and export CNNs for images."""

__version__ = "0.1.0"

from cnnkit.api import Model, load, train  # noqa: E402
from cnnkit.config import TrainConfig  # noqa: E402
from cnnkit.models import create_model, list_models, register_model  # noqa: E402

__all__ = ["Model", "TrainConfig", "__version__", "create_model", "list_models", "load", "register_model", "train"]

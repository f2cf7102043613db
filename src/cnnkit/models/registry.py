"""One small registry: ``@register_model`` adds a builder, ``create_model`` is the one entry point.

A model is registered with its ``kind``, what its network outputs (``CLASSIFIER``: class logits; ``SEGMENTER``:
per-pixel logits; ``MASK_DETECTOR`` / ``BOX_DETECTOR``: objects with or without masks; ``PRETRAINER``: a
self-supervised network around another's trunk; ``EMBEDDER``: a metric-learning network around another's
trunk; ``CLICKER``: a segmenter given clicks and its previous mask), never a task's name: a task says which kind
it trains (``TaskSpec.model_kind``; a task of its own may register its models under its name as the kind).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

from cnnkit.errors import CnnkitError, did_you_mean

CLASSIFIER, SEGMENTER, MASK_DETECTOR, BOX_DETECTOR, PRETRAINER, EMBEDDER, CLICKER = (
    "classifier", "segmenter", "mask_detector", "box_detector", "pretrainer", "embedder", "clicker")
# networks built around another registered model (--model names that one): its trunk, or a whole segmenter (CLICKER)
WRAPPERS = (PRETRAINER, EMBEDDER, CLICKER)


@dataclass(frozen=True)
class ModelEntry:
    name: str
    builder: Callable[..., nn.Module]
    kind: str  # what the network outputs (CLASSIFIER, ...): the task whose model_kind it is trains it
    description: str


_REGISTRY: dict[str, ModelEntry] = {}
# families too large to list (timm's hundreds of models): ``prefix -> resolve(name) -> ModelEntry``, asked on demand
_FAMILIES: dict[str, Callable[[str], ModelEntry]] = {}
_RESOLVED: dict[str, ModelEntry] = {}


def register_model(name: str | None = None, *, kind: str = CLASSIFIER) -> Callable:
    """Decorator: register ``builder(num_classes, in_chans, **kw) -> nn.Module`` under ``name``, of ``kind``."""

    def wrap(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        key = name or fn.__name__
        if key in _REGISTRY:
            raise ValueError(f"model '{key}' is already registered")
        doc = (fn.__doc__ or "").strip().splitlines()
        _REGISTRY[key] = ModelEntry(key, fn, kind, doc[0] if doc else "")
        return fn

    return wrap


def register_family(marker: str, resolve: Callable[[str], ModelEntry]) -> None:
    """Names containing ``marker`` (``"timm/"``) are built by ``resolve(name)`` when first asked for, instead
    of being registered one by one; ``resolve`` raises CnnkitError for a name it does not know."""
    if marker in _FAMILIES:
        raise ValueError(f"model family '{marker}' is already registered")
    _FAMILIES[marker] = resolve


def list_models(kind: str | None = None) -> list[str]:
    """The registered models (of ``kind``), by name; families resolved on demand (timm's) are not listed."""
    return sorted(k for k, e in _REGISTRY.items() if kind is None or e.kind == kind)


def get_entry(name: str) -> ModelEntry:
    family = next((resolve for marker, resolve in _FAMILIES.items() if marker in name), None)
    if name not in _REGISTRY and family is not None:
        if name not in _RESOLVED:  # kept apart from the registered ones: list_models() lists only those
            _RESOLVED[name] = family(name)
        return _RESOLVED[name]
    if name not in _REGISTRY:
        raise CnnkitError(
            f"unknown model '{name}'.{did_you_mean(name, _REGISTRY)} Run `cnnkit models` to list them."
        )
    return _REGISTRY[name]


def accepts(name: str, argument: str) -> bool:
    """Whether the builder of ``name`` takes keyword ``argument`` (e.g. ``input_size``)."""
    import inspect

    return argument in inspect.signature(get_entry(name).builder).parameters


def create_model(name: str, num_classes: int = 10, in_chans: int = 3, **kw) -> nn.Module:
    """Build the registered model ``name``; extra keywords go to its builder.

    The returned module maps float images ``(N, in_chans, H, W)`` to outputs of the task
    (logits ``(N, num_classes)`` for classification).
    """
    entry = get_entry(name)
    try:
        return entry.builder(num_classes=num_classes, in_chans=in_chans, **kw)
    except TypeError as e:
        raise CnnkitError(f"model '{name}': {e}; check model_args") from None

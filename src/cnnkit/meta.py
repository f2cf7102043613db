"""``ModelMeta``: the model card that checkpoints, ONNX metadata, TorchScript extra files and the server carry.

It is what a trained model needs besides its weights to be rebuilt and used: its task, classes and
their colours, input channels and normalisation, sizes, and the registered model it was built from.
Torch-free, so that an .onnx file is read without torch. ``SCHEMA`` counts changes of this layout;
``from_dict`` reads every earlier one (checkpoints written before the card was typed hold a plain
dict, read here with the same fallbacks that used to be scattered over the readers).

A task's ``build_data`` makes the card with :meth:`ModelMeta.card` (its own values in ``extra``, read back
with :meth:`ModelMeta.value`) and adds what is known later with ``replace``. The card also still reads as a
mapping (``meta[key]``) for users' code written against the dict it replaced: deprecated, with a
DeprecationWarning; cnnkit itself reads attributes only (``tests/test_meta.py`` checks).
"""

from __future__ import annotations

import colorsys
import dataclasses
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from cnnkit import __version__
from cnnkit.errors import CnnkitError

SCHEMA = 2  # 1: the untyped dict of cnnkit <= 0.4 (no "schema" key); 2: this dataclass
REQUIRED = ("task", "model", "classes", "in_chans", "mean", "std")  # a model cannot be rebuilt without them
T = TypeVar("T")


@dataclass(frozen=True)
class ModelMeta(Mapping):
    """A trained model's card. Sizes are pixels; ``mean``/``std`` are of 0..1 pixels, one per channel."""

    task: str  # registered task name (classify, segment, instance, detect, ...)
    model: str  # registered model name
    classes: tuple[str, ...]  # class names, index order (segment: index 0 is the first class, not "none")
    in_chans: int  # input channels
    mean: tuple[float, ...]  # per-channel mean of 0..1 pixels
    std: tuple[float, ...]  # per-channel std of 0..1 pixels
    model_args: Mapping[str, Any] = field(default_factory=dict)  # keyword arguments of the model builder
    num_outputs: int = 0  # output channels of the head: one per class unless given (a binary segmenter has 1)
    imgsz: int = 0  # training side (classify: the input; segment, instance: the crop's longer side)
    crop: tuple[int, ...] = ()  # training crop (H, W), segment and instance
    max_size: int = 0  # images shrunk to this longer side before training and prediction; 0 = full size
    pixel_max: float = 0.0  # high-bit-depth images: the value that maps to white; 0 = the mode's own range
    colours: tuple[tuple[int, ...], ...] = ()  # RGB per class for pictures; empty = cnnkit's palette
    split: Mapping[str, Any] | None = None  # how the validation images were held out (cnnkit.data.splits)
    inputs: Mapping[str, Any] = field(default_factory=dict)  # what the training images looked like (data.inputs)
    extra: Mapping[str, Any] = field(default_factory=dict)  # the task's own values (segment: values, ignore_index..)
    cnnkit_version: str = __version__  # the release that trained the model
    schema: int = SCHEMA  # the layout of this card

    def __post_init__(self) -> None:
        # one meaning whatever wrote the card: 0 (the default, and schema 1's "not given") is one per class
        if not self.num_outputs:
            object.__setattr__(self, "num_outputs", len(self.classes))

    @classmethod
    def card(cls, *, extra: Mapping[str, Any] | None = None, **fields: Any) -> ModelMeta:
        """A new card from plain values (lists where the fields are tuples), the task's own values in ``extra``;
        checked as :meth:`from_dict` checks a file's. TypeError for a name that is not a field."""
        unknown = sorted(set(fields) - set(_FIELDS))
        if unknown:
            raise TypeError(f"ModelMeta has no field {', '.join(unknown)}; a task's own values go in extra")
        return cls.from_dict({"cnnkit_version": __version__, **fields, "extra": dict(extra or {}), "schema": SCHEMA},
                             origin="the task's card")

    def value(self, key: str, default: T) -> T:
        """The task's own value ``key`` from ``extra`` (segment's ``values``, the detectors' ``detections``), or
        ``default`` where the card has none; CnnkitError where it is not of ``default``'s type (ints pass as
        floats)."""
        if key not in self.extra or self.extra[key] is None:
            return default
        value = self.extra[key]
        kind = float if isinstance(default, float) else type(default)
        if default is not None and not isinstance(value, kind) and not (kind is float and isinstance(value, int)):
            raise CnnkitError(f"the model card's {key} is {value!r}, not a {kind.__name__}; it was not written by "
                              "cnnkit (or was edited); retrain or re-export the model")
        return value

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def split_plan(self) -> dict[str, Any] | None:
        """``split`` as the plain dict that ``cnnkit.data.splits`` reads; None where the card has none."""
        return None if self.split is None else _plain(self.split)

    @property
    def input_side(self) -> int:
        """The side a fixed-size input takes (pixels): the training size, else the crop's longer side, else 224."""
        return int(self.imgsz or max(self.crop or (0,)) or 224)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any], origin: str = "metadata") -> ModelMeta:
        """A card from a checkpoint's, an ONNX file's or a TorchScript file's dict, of any schema so far;
        CnnkitError naming ``origin`` when a required key is missing."""
        if isinstance(values, ModelMeta):
            return values
        lacking = [k for k in REQUIRED if k not in values]
        if lacking:
            raise CnnkitError(f"{origin}: the model card lacks {', '.join(lacking)}; it was not written by "
                              "cnnkit (or was edited); retrain or re-export the model")
        try:
            card = cls._from_values(values)
        except (TypeError, ValueError) as e:
            raise CnnkitError(f"{origin}: the model card is malformed ({e}); it was not written by cnnkit (or was "
                              "edited); retrain or re-export the model") from None
        if card.schema > SCHEMA:
            raise CnnkitError(f"{origin}: written by a newer cnnkit (model card schema {card.schema}, this release "
                              f"reads up to {SCHEMA}); upgrade cnnkit")
        return card

    @classmethod
    def _from_values(cls, values: Mapping[str, Any]) -> ModelMeta:
        """The card from a dict, its types and shapes checked (ValueError / TypeError otherwise)."""
        classes = values["classes"]
        if isinstance(classes, str) or not classes or not all(isinstance(c, str) for c in classes):
            raise ValueError(f"classes must be a non-empty list of names, got {classes!r}")
        channels = int(values["in_chans"])
        for key in ("mean", "std"):
            if len(values[key]) not in (channels,) or channels < 1:
                raise ValueError(f"{key} holds {len(values[key])} values for {channels} channels")
        known = {f.name for f in dataclasses.fields(cls)}
        extra = dict(values.get("extra") or {})
        # schema 1 kept every task's own values at the top level
        extra.update({k: v for k, v in values.items() if k not in known and k not in ("num_classes", "extra")})
        return cls(task=str(values["task"]), model=str(values["model"]), classes=tuple(values["classes"]),
                   in_chans=int(values["in_chans"]), mean=tuple(float(v) for v in values["mean"]),
                   std=tuple(float(v) for v in values["std"]), model_args=dict(values.get("model_args") or {}),
                   num_outputs=int(values.get("num_outputs") or 0),
                   imgsz=int(values.get("imgsz") or 0), crop=tuple(int(v) for v in values.get("crop") or ()),
                   max_size=int(values.get("max_size") or 0), pixel_max=float(values.get("pixel_max") or 0.0),
                   colours=tuple(tuple(int(c) for c in rgb) for rgb in values.get("colours") or ()),
                   split=values.get("split"), inputs=dict(values.get("inputs") or {}), extra=extra,
                   cnnkit_version=str(values.get("cnnkit_version") or "unknown"),
                   schema=int(values.get("schema") or 1))

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able values (lists, not tuples), in the current schema."""
        out = {f.name: _plain(getattr(self, f.name)) for f in dataclasses.fields(self)}
        out["schema"] = SCHEMA
        return out

    def replace(self, **changes: Any) -> ModelMeta:
        return dataclasses.replace(self, **changes)

    # the deprecated read-only mapping view: fields, then the task's extra values, then the derived num_classes
    def __getitem__(self, key: str) -> Any:
        instead = f"meta.{key}" if key in _FIELDS or key == "num_classes" else f"meta.value({key!r}, default)"
        warnings.warn(f"reading the model card as a mapping (meta[{key!r}]) is deprecated; read {instead}",
                      DeprecationWarning, stacklevel=2)
        if key in _FIELDS:
            return _plain(getattr(self, key))
        if key == "num_classes":
            return self.num_classes
        if key in self.extra:
            return self.extra[key]
        raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        yield from (*(k for k in _FIELDS if k != "extra"), "num_classes", *self.extra)

    def __len__(self) -> int:
        return len(_FIELDS) + len(self.extra)

    def __contains__(self, key: object) -> bool:
        return key in _FIELDS or key == "num_classes" or key in self.extra

    __hash__ = None  # type: ignore[assignment]  # holds dicts


def default_colours(n: int) -> list[list[int]]:
    """``n`` RGB colours far apart in hue (golden-ratio steps), bright enough to see: the palette of a model
    whose card names none."""
    return [[int(255 * c) for c in colorsys.hsv_to_rgb((i * 0.618034) % 1, 0.75, 1.0)] for i in range(n)]


def _plain(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    return value


_FIELDS = tuple(f.name for f in dataclasses.fields(ModelMeta))

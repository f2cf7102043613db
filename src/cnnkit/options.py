"""Prediction options: one frozen dataclass per task, each field made by :func:`option` with its
default, unit, range and one line of help.

Everything else is generated from those dataclasses: the flags of ``cnnkit predict`` and ``cnnkit
val`` (``cnnkit.cli``), the query parameters of ``/predict`` and their OpenAPI entries, ``/info``
(``cnnkit.serve``), and the checks of ``Model.predict(**options)``. An option is written once.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from cnnkit.errors import CnnkitError, did_you_mean

RUNTIMES = ("pytorch", "onnx", "torchscript")


def option(default: Any, help: str, *, unit: str = "", low: float | None = None, high: float | None = None,
           below: float | None = None, choices: tuple[str, ...] | None = None, runtimes: tuple[str, ...] = RUNTIMES,
           evaluate: bool = False) -> Any:
    """A field of a task's options dataclass (prediction or training options): ``default`` (its type is the
    option's), ``help`` (one line), ``unit``, the inclusive range ``[low, high]`` (``below``: an exclusive upper
    bound instead), ``choices``, the ``runtimes`` that honour it, and ``evaluate`` when it also applies to
    ``cnnkit val``."""
    return field(default=default, metadata={"help": help, "unit": unit, "low": low, "high": high, "below": below,
                                            "choices": choices, "runtimes": runtimes, "evaluate": evaluate})


@dataclass(frozen=True)
class OptionInfo:
    """One option as the CLI and the server see it."""

    name: str
    kind: type
    default: Any
    help: str
    unit: str = ""
    low: float | None = None
    high: float | None = None
    choices: tuple[str, ...] | None = None
    runtimes: tuple[str, ...] = RUNTIMES
    evaluate: bool = False
    below: float | None = None

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    def parse(self, text: str) -> Any:
        """A value from text (a flag or a query parameter); ValueError with the reason."""
        if self.kind is bool:
            if text.lower() not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError(f"expected true or false, got {text!r}")
            return text.lower() in ("true", "1", "yes")
        try:
            value = self.kind(text)
        except ValueError:
            what = {int: "a whole number", float: "a number"}.get(self.kind, self.kind.__name__)
            raise ValueError(f"expected {what}, got {text!r}") from None
        self.check(value)
        return value

    def check(self, value: Any) -> None:
        """ValueError when ``value`` is outside the option's range or choices, or not of its type."""
        if self.kind is bool and not isinstance(value, bool):
            raise ValueError(f"expected True or False, got {value!r}")  # 'no' is truthy: it would switch it on
        if self.kind is str and not isinstance(value, str):
            raise ValueError(f"expected a string, got {value!r}")
        if self.kind in (int, float) and not (isinstance(value, (int, float)) and not isinstance(value, bool)
                                              and math.isfinite(value)):
            raise ValueError(f"expected a finite number, got {value!r}")
        if self.kind is int and isinstance(value, float) and not value.is_integer():
            raise ValueError(f"expected a whole number, got {value!r}")
        if self.choices and value not in self.choices:
            raise ValueError(f"must be one of {', '.join(self.choices)}, got {value!r}")
        if self.low is not None and value < self.low:
            raise ValueError(f"must be at least {self.low}, got {value!r}")
        if self.high is not None and value > self.high:
            raise ValueError(f"must be at most {self.high}, got {value!r}")
        if self.below is not None and value >= self.below:
            raise ValueError(f"must be below {self.below}, got {value!r}")

    def bounds(self) -> str:
        """The range in words for --help: 'at least 0', '0 to 1', 'at least 0, below 1'; '' if unbounded."""
        if self.low is not None and self.high is not None:
            return f"{self.low} to {self.high}"
        parts = ([f"at least {self.low}"] if self.low is not None else []) + (
            [f"at most {self.high}"] if self.high is not None else []) + (
            [f"below {self.below}"] if self.below is not None else [])
        return ", ".join(parts)

    def describe(self) -> dict[str, Any]:
        """JSON for /info and the docs."""
        return {"name": self.name, "type": self.kind.__name__, "default": self.default, "help": self.help,
                "unit": self.unit, "min": self.low, "max": self.high, "choices": list(self.choices or []) or None}


def option_infos(options: type) -> list[OptionInfo]:
    """The options of a task's dataclass, in field order."""
    out = []
    for f in dataclasses.fields(options):
        m = f.metadata
        out.append(OptionInfo(f.name, type(f.default), f.default, m.get("help", ""), m.get("unit", ""),
                              m.get("low"), m.get("high"), m.get("choices"), m.get("runtimes", RUNTIMES),
                              m.get("evaluate", False), m.get("below")))
    return out


def runtime_options(options: type, runtime: str) -> list[OptionInfo]:
    """The options of a task's dataclass that ``runtime`` (pytorch, onnx, torchscript) honours."""
    return [i for i in option_infos(options) if runtime in i.runtimes]


def make_options(options: type, values: Mapping[str, Any], task: str, runtime: str = "pytorch",
                 flags: bool = False, evaluate: bool = False) -> Any:
    """``options(**values)`` after checking each name, runtime and value; CnnkitError otherwise.

    ``flags``: name the options as command-line flags (``--max-det``) in errors, else as keywords;
    ``evaluate``: only the options that apply to evaluation (``cnnkit val``) are taken.
    """
    infos = {i.name: i for i in option_infos(options) if i.evaluate or not evaluate}
    name = (lambda key: "--" + key.replace("_", "-")) if flags else (lambda key: key)
    taken = [i.name for i in infos.values() if runtime in i.runtimes]
    for key, value in values.items():
        if key not in infos:
            hint = did_you_mean(key, infos) if not flags else ""
            raise CnnkitError(f"{name(key)}: not an option of {task}.{hint} It takes "
                              f"{', '.join(name(k) for k in taken) or 'none'}")
        if runtime not in infos[key].runtimes:
            raise CnnkitError(f"{name(key)}: not available for {task} on {runtime} (it is honoured on "
                              f"{', '.join(infos[key].runtimes)}); drop {name(key)}")
        try:
            infos[key].check(value)
        except ValueError as e:
            raise CnnkitError(f"{name(key)}: {e}") from None
    try:
        return options(**values)  # its __post_init__ may check fields together (tile sizes, ...)
    except ValueError as e:
        raise CnnkitError(str(e)) from None


def options_dict(values: Any) -> dict[str, Any]:
    """An options dataclass as a plain dict (for logs and JSON)."""
    return dataclasses.asdict(values)


@dataclass(frozen=True)
class NoOptions:
    """A task whose predictor takes no options."""

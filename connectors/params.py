"""Typed tool parameters: validation of raw values and their rendering as job arguments.

Raw values come from users (SOAP, CLI, GiSHEO argument lists) as strings or JSON
scalars. Each parameter converts them to one Python type, checks the range or
choice set, and renders the result from a small alphabet, so that a job argument
can never carry anything but a number, a declared choice or a flag.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from gproc.connectors.base import InvalidRequest

NAME_RE = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
"""Names of parameters and ports: also the form used on payload command lines."""

SAFE_ARG_RE = re.compile(r"^[A-Za-z0-9_.,=+-]{1,128}$")
"""Every job argument matches this (checked again when a plan is built)."""

_INT_RE = re.compile(r"^[+-]?[0-9]{1,12}$")
_FLOAT_RE = re.compile(
    r"^[+-]?(?:[0-9]{1,15}(?:\.[0-9]{0,15})?|\.[0-9]{1,15})(?:[eE][+-]?[0-9]{1,3})?$"
)
_TRUE = frozenset({"true", "1", "yes", "on"})
_FALSE = frozenset({"false", "0", "no", "off"})
MAX_RAW_LEN = 64


def _describe_raw(value: object) -> str:
    """A short, printable rendering of a refused value for error messages."""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _raw_string(field: str, value: object) -> str:
    if len(str(value)) > MAX_RAW_LEN:
        raise InvalidRequest(field, f"value longer than {MAX_RAW_LEN} characters")
    return str(value).strip()


@dataclass(frozen=True)
class Param:
    """Base of typed parameters. ``default=None`` with ``required=False`` means: omitted."""

    name: str
    description: str
    default: Any = None
    required: bool = False
    type_name: ClassVar[str] = "?"

    def __post_init__(self) -> None:
        if not NAME_RE.match(self.name):
            raise ValueError(f"bad parameter name {self.name!r}")

    def convert(self, field: str, value: object) -> Any:
        """Return the typed value or raise InvalidRequest naming ``field``."""
        raise NotImplementedError

    def render(self, value: Any) -> str:
        """The argument text of an already converted value."""
        return str(value)

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "type": self.type_name,
            "description": self.description,
            "default": self.default,
            "required": self.required,
        }


@dataclass(frozen=True)
class IntParam(Param):
    minimum: int | None = None
    maximum: int | None = None
    choices: tuple[int, ...] | None = None
    type_name: ClassVar[str] = "int"

    def convert(self, field: str, value: object) -> int:
        if isinstance(value, bool):
            raise InvalidRequest(field, "expected an integer, got a boolean")
        if isinstance(value, int):
            number = value
        elif isinstance(value, float) and math.isfinite(value) and value.is_integer():
            number = int(value)
        elif isinstance(value, str) and _INT_RE.match(_raw_string(field, value)):
            number = int(value.strip())
        else:
            raise InvalidRequest(field, f"expected an integer, got {_describe_raw(value)}")
        if self.choices is not None and number not in self.choices:
            allowed = ", ".join(str(c) for c in self.choices)
            raise InvalidRequest(field, f"{number} is not one of {allowed}")
        _check_range(field, number, self.minimum, self.maximum)
        return number

    def describe(self) -> dict[str, Any]:
        out = super().describe() | {"min": self.minimum, "max": self.maximum}
        if self.choices is not None:
            out["choices"] = list(self.choices)
        return out


@dataclass(frozen=True)
class FloatParam(Param):
    minimum: float | None = None
    maximum: float | None = None
    type_name: ClassVar[str] = "float"

    def convert(self, field: str, value: object) -> float:
        number = _to_float(field, value)
        _check_range(field, number, self.minimum, self.maximum)
        return number

    def render(self, value: Any) -> str:
        return repr(float(value))

    def describe(self) -> dict[str, Any]:
        return super().describe() | {"min": self.minimum, "max": self.maximum}


@dataclass(frozen=True)
class ChoiceParam(Param):
    choices: tuple[str, ...] = ()
    type_name: ClassVar[str] = "choice"

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.choices or not all(NAME_RE.match(c) for c in self.choices):
            raise ValueError(f"bad choices for {self.name}: {self.choices!r}")

    def convert(self, field: str, value: object) -> str:
        if isinstance(value, str) and _raw_string(field, value) in self.choices:
            return value.strip()
        raise InvalidRequest(
            field, f"{_describe_raw(value)} is not one of {', '.join(self.choices)}"
        )

    def describe(self) -> dict[str, Any]:
        return super().describe() | {"choices": list(self.choices)}


@dataclass(frozen=True)
class BoolParam(Param):
    type_name: ClassVar[str] = "bool"

    def convert(self, field: str, value: object) -> bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        if isinstance(value, str):
            text = _raw_string(field, value).lower()
            if text in _TRUE:
                return True
            if text in _FALSE:
                return False
        raise InvalidRequest(field, f"expected true or false, got {_describe_raw(value)}")

    def render(self, value: Any) -> str:
        return "1" if value else "0"


@dataclass(frozen=True)
class BBoxParam(Param):
    """Four floats ``xmin,ymin,xmax,ymax``: a string with commas or a sequence of numbers."""

    type_name: ClassVar[str] = "bbox"

    def convert(self, field: str, value: object) -> tuple[float, float, float, float]:
        if isinstance(value, str):
            if len(value) > 4 * MAX_RAW_LEN:
                raise InvalidRequest(field, "value too long")
            parts: Sequence[object] = value.split(",")
        elif isinstance(value, list | tuple):
            parts = value
        else:
            raise InvalidRequest(field, "expected 'xmin,ymin,xmax,ymax'")
        if len(parts) != 4:
            raise InvalidRequest(field, f"expected 4 numbers xmin,ymin,xmax,ymax, got {len(parts)}")
        xmin, ymin, xmax, ymax = (_to_float(field, p) for p in parts)
        if not (xmin < xmax and ymin < ymax):
            raise InvalidRequest(field, "needs xmin < xmax and ymin < ymax")
        return (xmin, ymin, xmax, ymax)

    def render(self, value: Any) -> str:
        return ",".join(repr(float(v)) for v in value)


def _to_float(field: str, value: object) -> float:
    if isinstance(value, bool):
        raise InvalidRequest(field, "expected a number, got a boolean")
    if isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str) and _FLOAT_RE.match(_raw_string(field, value)):
        number = float(value.strip())
    else:
        raise InvalidRequest(field, f"expected a number, got {_describe_raw(value)}")
    if not math.isfinite(number):
        raise InvalidRequest(field, "expected a finite number")
    return number


def _check_range(field: str, number: float, low: float | None, high: float | None) -> None:
    if low is not None and number < low:
        raise InvalidRequest(field, f"{number} is below the minimum {low}")
    if high is not None and number > high:
        raise InvalidRequest(field, f"{number} is above the maximum {high}")

"""Operation forms built from a tool's description (``DescribeTool``), and their
validation in the portal before anything is sent: the same ranges, choices and
required flags the service checks, so a wrong value is shown next to its field and
nothing is submitted. The service stays the authority (it validates again).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

BOOL_WORDS = {"true": "true", "on": "true", "1": "true", "false": "false", "0": "false", "": ""}


@dataclass(frozen=True)
class Param:
    """One input of an operation form."""

    name: str
    type: str  # int | float | bool | choice | bbox | string
    description: str = ""
    required: bool = False
    default: str | None = None
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[str, ...] = ()

    @property
    def widget(self) -> str:
        if self.choices:
            return "select"
        if self.type == "bool":
            return "checkbox"
        if self.type in ("int", "float"):
            return "number"
        return "text"

    @property
    def step(self) -> str:
        return "1" if self.type == "int" else "any"


@dataclass(frozen=True)
class Port:
    name: str
    description: str = ""
    multiple: bool = False


@dataclass(frozen=True)
class ToolForm:
    name: str
    description: str
    inputs: tuple[Port, ...]
    outputs: tuple[str, ...]
    params: tuple[Param, ...]


@dataclass
class Checked:
    """Cleaned parameter values (strings, as the wire takes them) or errors by field."""

    values: dict[str, str] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.errors


def _num(value: Any) -> float | None:
    return None if value is None else float(value)


def tool_form(info: Any) -> ToolForm:
    """The form of a zeep ``ToolInfo``."""
    params = tuple(
        Param(
            name=p.name,
            type=p.type or "string",
            description=p.description or "",
            required=bool(p.required),
            default=p.default,
            minimum=_num(p.minimum),
            maximum=_num(p.maximum),
            choices=tuple(p.choices or ()),
        )
        for p in info.params or []
    )
    inputs = tuple(Port(i.name, i.description or "", bool(i.multiple)) for i in info.inputs or [])
    outputs = tuple(o.name for o in info.outputs or [])
    return ToolForm(info.name, info.description or "", inputs, outputs, params)


def check_params(form: ToolForm, given: Mapping[str, str]) -> Checked:
    """Validate submitted values against the form (empty = the tool's default)."""
    out = Checked()
    known = {p.name for p in form.params}
    for name in given:
        if name not in known:
            out.errors[name] = f"{name}: not a parameter of {form.name}"
    for p in form.params:
        raw = (given.get(p.name) or "").strip()
        if p.type == "bool":
            raw = BOOL_WORDS.get(raw.lower(), raw)
        if not raw:
            if p.required:
                out.errors[p.name] = f"{p.name}: required"
            continue
        problem = _problem(p, raw)
        if problem:
            out.errors[p.name] = f"{p.name}: {problem}"
        else:
            out.values[p.name] = raw
    return out


def _problem(p: Param, raw: str) -> str | None:
    if p.choices and raw not in p.choices:
        return f"must be one of {', '.join(p.choices)}"
    if p.type == "bool" and raw not in ("true", "false"):
        return "must be true or false"
    if p.type in ("int", "float"):
        return _number_problem(p, raw)
    if p.type == "bbox":
        return _bbox_problem(raw)
    if len(raw) > 512:
        return "at most 512 characters"
    return None


def _number_problem(p: Param, raw: str) -> str | None:
    try:
        value = int(raw) if p.type == "int" else float(raw)
    except ValueError:
        return "must be a whole number" if p.type == "int" else "must be a number"
    if isinstance(value, float) and not math.isfinite(value):
        return "must be a finite number"
    if p.minimum is not None and value < p.minimum:
        return f"must be at least {_fmt(p.minimum)}"
    if p.maximum is not None and value > p.maximum:
        return f"must be at most {_fmt(p.maximum)}"
    return None


def _bbox_problem(raw: str) -> str | None:
    parts = raw.split(",")
    try:
        xmin, ymin, xmax, ymax = (float(v) for v in parts)
    except ValueError:
        return "must be four numbers xmin,ymin,xmax,ymax"
    if not (xmin < xmax and ymin < ymax):
        return "xmin must be below xmax and ymin below ymax"
    return None


def _fmt(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def parse_bbox(raw: str) -> tuple[float, float, float, float] | None:
    """A map box ``west,south,east,north`` in degrees, or None when malformed."""
    try:
        west, south, east, north = (float(v) for v in raw.split(","))
    except ValueError:
        return None
    if not all(math.isfinite(v) for v in (west, south, east, north)):
        return None
    if not (-180 <= west < east <= 180 and -90 <= south < north <= 90):
        return None
    return west, south, east, north

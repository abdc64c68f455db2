"""GiSHEO processing notation -> structured :class:`ToolRequest`.

GiSHEO describes a task with a prototype and an argument list::

    processing     outIMG_1 canny(inIMG_1#canny1#aperture_size#canny2)
    argument-list  <canny2=120>#<aperture_size=3>

Grammar (whitespace allowed around tokens; all names ASCII)::

    processing    := outputs tool "(" [arg ("#" arg)*] ")"
    outputs       := OUT ("," OUT)*            OUT := "outIMG_" 1-3 digits
    tool          := letter (letter|digit|_){0,31}
    arg           := IN | param                IN  := "inIMG_" 1-3 digits
    param         := letter (letter|digit|_){0,31}
    argument-list := "" | item ("#" item)*     item := "<" param "=" value ">"
    value         := 1-64 of A-Z a-z 0-9 _ . , + -

Mapping: the tool name goes through :data:`TOOL_NAMES`; parameter names through
:data:`PARAM_ALIASES` (else used as they are); the k-th ``inIMG`` of the prototype
feeds the connector's k-th input port (all of them for a connector with one
``multiple`` port); the k-th ``outIMG`` labels the k-th output port. Parameters named
in the prototype but absent from the argument list take their defaults.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from gproc.connectors.base import Connector, InvalidRequest, ToolRequest, UnknownTool
from gproc.connectors.registry import get_connector

MAX_PROCESSING_LEN = 512
MAX_ARGUMENT_LIST_LEN = 2048
MAX_ARGS = 64

TOOL_NAMES: dict[str, str] = {
    "canny": "canny",
    "grayscale": "grayscale",
    "gray": "grayscale",
    "rgb2gray": "grayscale",
    "histeq": "equalize",
    "equalize": "equalize",
    "equalizehist": "equalize",
    "quantize": "quantize",
    "quantization": "quantize",
    "threshold": "threshold",
    "binarize": "threshold",
    "hough": "hough",
    "houghlines": "hough",
    "hough_lines": "hough",
    "band": "band",
    "extractband": "band",
    "ndvi": "ndvi",
    "reproject": "reproject",
    "warp": "reproject",
    "mosaic": "mosaic",
    "clip": "clip",
    "crop": "clip",
    "lst": "modis_lst",
    "modislst": "modis_lst",
    "modis_lst": "modis_lst",
}
"""GiSHEO tool name (case-insensitive) -> connector name."""

_CANNY_ALIASES = {"threshold1": "canny1", "threshold2": "canny2", "aperturesize": "aperture_size"}
PARAM_ALIASES: dict[str, dict[str, str]] = {
    "canny": _CANNY_ALIASES,
    "hough": _CANNY_ALIASES
    | {
        "minlinelength": "min_line_length",
        "maxlinegap": "max_line_gap",
        # the names of GiSHEO's workflow paper (Figure 7: hough_lines)
        "min_line": "min_line_length",
        "min_gap": "max_line_gap",
        "hough_threshold": "threshold",
    },
    "quantize": {"nlevels": "levels"},
    "threshold": {"thresh": "value", "maxval": "max_value"},
    "reproject": {"srs": "epsg"},
    "mosaic": {"srs": "epsg"},
    "clip": {"srs": "epsg"},
    "modis_lst": {"scale": "scale_factor"},
}
"""Per connector: GiSHEO parameter name (case-insensitive) -> connector parameter."""

_PROTO_RE = re.compile(
    r"^\s*(?P<outs>outIMG_[0-9]{1,3}(?:\s*,\s*outIMG_[0-9]{1,3})*)\s+"
    r"(?P<tool>[A-Za-z][A-Za-z0-9_]{0,31})\s*\((?P<args>[^()]*)\)\s*$"
)
_IN_RE = re.compile(r"^inIMG_[0-9]{1,3}$")
_PARAM_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,31}$")
_ITEM_RE = re.compile(
    r"^<\s*(?P<name>[A-Za-z][A-Za-z0-9_]{0,31})\s*=\s*(?P<value>[A-Za-z0-9_.,+-]{1,64})\s*>$"
)
_PRINTABLE_RE = re.compile(r"^[\x20-\x7e]*$")


def parse(processing: str, argument_list: str, inputs: Mapping[str, str]) -> ToolRequest:
    """A validated ToolRequest for a GiSHEO task; raises InvalidRequest or UnknownTool.

    ``inputs`` maps the prototype's input names (``inIMG_1``...) to sources.
    """
    outs, tool_name, args = _split_prototype(processing)
    connector = _connector(tool_name)
    in_names, param_names = _classify(connector, args)
    values = _argument_values(argument_list)
    for name in values:
        if name not in param_names:
            raise InvalidRequest(
                "argument-list", f"{name!r} is not a parameter named in the prototype"
            )
    request = ToolRequest(
        tool=connector.name,
        inputs=_bind_inputs(connector, in_names, inputs),
        params={param_names[n]: v for n, v in values.items()},
        outputs=_bind_outputs(connector, outs),
    )
    connector.plan(request)  # typed validation now, with the caller's field names
    return request


def prototype(connector: Connector) -> str:
    """The GiSHEO prototype naming every input and parameter of ``connector``."""
    ins = [f"inIMG_{i}" for i in range(1, len(connector.inputs) + 1)]
    if len(connector.inputs) == 1 and connector.inputs[0].multiple:
        ins = [f"inIMG_{i}" for i in range(1, connector.inputs[0].min_count + 1)]
    outs = ",".join(f"outIMG_{i}" for i in range(1, len(connector.outputs) + 1))
    return f"{outs} {connector.name}({'#'.join(ins + [p.name for p in connector.params])})"


def _split_prototype(processing: str) -> tuple[list[str], str, list[str]]:
    if not isinstance(processing, str):
        raise InvalidRequest("processing", "expected a string")
    if len(processing) > MAX_PROCESSING_LEN:
        raise InvalidRequest("processing", f"longer than {MAX_PROCESSING_LEN} characters")
    if not _PRINTABLE_RE.match(processing):
        raise InvalidRequest("processing", "only printable ASCII on one line is allowed")
    match = _PROTO_RE.match(processing)
    if not match:
        raise InvalidRequest(
            "processing", "expected 'outIMG_1 tool(inIMG_1#param#...)' (see connectors.gisheo)"
        )
    outs = [o.strip() for o in match["outs"].split(",")]
    body = match["args"].strip()
    args = [a.strip() for a in body.split("#")] if body else []
    if len(args) > MAX_ARGS:
        raise InvalidRequest("processing", f"more than {MAX_ARGS} arguments")
    if len(set(outs)) != len(outs):
        raise InvalidRequest("processing", "an output name is repeated")
    return outs, match["tool"], args


def _connector(tool_name: str) -> Connector:
    mapped = TOOL_NAMES.get(tool_name.lower())
    if mapped is None:
        raise UnknownTool(tool_name)
    return get_connector(mapped)


def _classify(connector: Connector, args: Sequence[str]) -> tuple[list[str], dict[str, str]]:
    """Input names in order, and prototype parameter name -> connector parameter name."""
    aliases = PARAM_ALIASES.get(connector.name, {})
    declared = {p.name for p in connector.params}
    in_names: list[str] = []
    params: dict[str, str] = {}
    for arg in args:
        if _IN_RE.match(arg):
            if arg in in_names:
                raise InvalidRequest("processing", f"input {arg} is repeated")
            in_names.append(arg)
            continue
        if not _PARAM_RE.match(arg):
            raise InvalidRequest("processing", f"bad argument {arg[:40]!r} in the prototype")
        target = aliases.get(arg.lower(), arg)
        if target not in declared:
            raise InvalidRequest("processing", f"unknown parameter {arg!r} for {connector.name}")
        if arg in params or target in params.values():
            raise InvalidRequest("processing", f"parameter {arg!r} is repeated")
        params[arg] = target
    return in_names, params


def _argument_values(argument_list: str) -> dict[str, str]:
    if argument_list is None:
        return {}
    if not isinstance(argument_list, str):
        raise InvalidRequest("argument-list", "expected a string")
    if len(argument_list) > MAX_ARGUMENT_LIST_LEN:
        raise InvalidRequest("argument-list", f"longer than {MAX_ARGUMENT_LIST_LEN} characters")
    if not _PRINTABLE_RE.match(argument_list):
        raise InvalidRequest("argument-list", "only printable ASCII on one line is allowed")
    if not argument_list.strip():
        return {}
    values: dict[str, str] = {}
    for item in argument_list.split("#"):
        match = _ITEM_RE.match(item.strip())
        if not match:
            raise InvalidRequest(
                "argument-list", f"expected '<name=value>', got {item.strip()[:40]!r}"
            )
        if match["name"] in values:
            raise InvalidRequest("argument-list", f"{match['name']!r} given twice")
        values[match["name"]] = match["value"]
    return values


def _bind_inputs(
    connector: Connector, in_names: Sequence[str], sources: Mapping[str, str]
) -> dict[str, str | list[str]]:
    if not isinstance(sources, Mapping):
        raise InvalidRequest("inputs", "expected a mapping of inIMG name -> source")
    for name in sources:
        if name not in in_names:
            where = f"inputs.{name}" if isinstance(name, str) and _IN_RE.match(name) else "inputs"
            raise InvalidRequest(where, f"input {str(name)[:40]!r} is not named in the prototype")
    for name in in_names:
        if name not in sources:
            raise InvalidRequest(f"inputs.{name}", "no source given for this input")
    ports = connector.inputs
    if len(ports) == 1 and ports[0].multiple:
        return {ports[0].name: [sources[n] for n in in_names]}
    if len(in_names) != len(ports):
        wanted = ", ".join(p.name for p in ports)
        raise InvalidRequest(
            "processing",
            f"{connector.name} takes {len(ports)} input(s) ({wanted}), "
            f"the prototype names {len(in_names)}",
        )
    return {port.name: sources[name] for port, name in zip(ports, in_names, strict=True)}


def _bind_outputs(connector: Connector, outs: Sequence[str]) -> dict[str, str]:
    if len(outs) > len(connector.outputs):
        raise InvalidRequest(
            "processing",
            f"{connector.name} has {len(connector.outputs)} output(s), "
            f"the prototype names {len(outs)}",
        )
    return {port.name: out for port, out in zip(connector.outputs, outs, strict=False)}

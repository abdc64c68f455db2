"""Tool connectors: a processing tool's typed interface and how it becomes a job.

A connector declares its inputs, outputs and parameters, validates a request
and plans the job. It knows nothing about any WMS: the core turns a
:class:`JobPlan` into a ``wrappers.base.JobSpec``.

Safety rule: job arguments and sandbox file names are built only from names the
connector declares and from typed, range-checked parameter values. User strings
(sources, labels, parameter names) are checked but never copied into a plan's
arguments or file names.
"""

from __future__ import annotations

import re
from abc import ABC
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from gproc import errors

if TYPE_CHECKING:
    from gproc.connectors.params import Param


class InvalidRequest(errors.InvalidRequest):
    """A request a connector refuses; ``field`` names what is wrong."""

    field: str

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message, field=field)


class UnknownTool(errors.InvalidRequest):
    """No connector of that name (``field`` is ``tool``)."""

    def __init__(self, name: str) -> None:
        super().__init__(f"unknown tool {name!r}", field="tool")
        self.name = name


ParamValue = int | float | str | bool | Sequence[float]

PAYLOAD_DIR = Path(__file__).resolve().parent / "payload"
EOTOOL = PAYLOAD_DIR / "eotool.py"

_PORT_RE = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
_LABEL_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_SAFE_ARG_RE = re.compile(r"^[A-Za-z0-9_.,=+-]{1,128}$")
_FILE_RE = re.compile(r"^[a-z][a-z0-9_]{0,40}\.(tif|json)$")
MAX_SOURCE_LEN = 4096


@dataclass(frozen=True)
class ToolRequest:
    """What a caller asks for. ``inputs`` maps input port -> source reference
    (resolved and staged by the core), or -> a sequence of sources for a port
    declared ``multiple``; ``params`` holds raw, unvalidated values."""

    tool: str
    inputs: Mapping[str, str | Sequence[str]]
    params: Mapping[str, ParamValue] = field(default_factory=dict)
    outputs: Mapping[str, str] = field(default_factory=dict)  # optional port -> user label


@dataclass(frozen=True)
class JobPlan:
    """The job a connector wants: all names and arguments already safe.

    ``inputs`` maps a port to its sandbox file name, or for a ``multiple`` port
    to a tuple of names in the order of the request's sources. ``staging``
    flattens this into (source, sandbox name) pairs for the core to stage.
    """

    executable: Path  # a payload script shipped in connectors/payload
    arguments: tuple[str, ...]
    inputs: Mapping[str, str | tuple[str, ...]]  # input port -> file name(s) in the sandbox
    outputs: Mapping[str, str]  # output port -> file name in the job sandbox
    request_cpus: int = 1
    request_memory_mb: int = 512
    request_disk_mb: int = 1024
    tool: str = ""
    params: Mapping[str, Any] = field(default_factory=dict)  # validated, typed values
    staging: tuple[tuple[str, str], ...] = ()  # (source reference, sandbox file name)
    output_labels: Mapping[str, str] = field(default_factory=dict)  # port -> checked label


@dataclass(frozen=True)
class InputPort:
    """An input raster. ``multiple`` ports take between min_count and max_count sources.
    ``accepts``: the catalogue dataset types it takes (sub-types too); empty: any raster."""

    name: str
    description: str
    multiple: bool = False
    min_count: int = 1
    max_count: int = 1
    accepts: tuple[str, ...] = ()

    def file_names(self, count: int) -> tuple[str, ...]:
        if not self.multiple:
            return (f"in_{self.name}.tif",)
        return tuple(f"in_{self.name}_{i}.tif" for i in range(1, count + 1))

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "multiple": self.multiple,
            "min_count": self.min_count,
            "max_count": self.max_count,
        }


@dataclass(frozen=True)
class OutputPort:
    name: str
    description: str
    file_name: str = "out.tif"
    media_type: str = "image/tiff"

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "file_name": self.file_name,
            "media_type": self.media_type,
        }


@dataclass(frozen=True)
class Resources:
    cpus: int = 1
    memory_mb: int = 512
    disk_mb: int = 1024


def safe_field(prefix: str, name: object) -> str:
    """``prefix.name`` when the name is a plain identifier, else just ``prefix``."""
    if isinstance(name, str) and _PORT_RE.match(name):
        return f"{prefix}.{name}"
    return prefix


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


class Connector(ABC):
    """Base of all tool connectors (see ``connectors/tools``).

    Subclasses set the class attributes; most need no code. ``payload_tool`` is
    the sub-command of ``connectors/payload/eotool.py`` that does the work.
    """

    name: ClassVar[str]
    description: ClassVar[str]
    payload_tool: ClassVar[str]
    inputs: ClassVar[tuple[InputPort, ...]]
    outputs: ClassVar[tuple[OutputPort, ...]] = (OutputPort("output", "Result raster (GeoTIFF)"),)
    params: ClassVar[tuple[Param, ...]] = ()
    resources: ClassVar[Resources] = Resources()

    # -- validation ---------------------------------------------------------
    def validate_params(self, raw: Mapping[str, object]) -> dict[str, Any]:
        """Typed values for every declared parameter (defaults filled in)."""
        if not isinstance(raw, Mapping):
            raise InvalidRequest("params", "expected a mapping of name -> value")
        declared = {p.name: p for p in self.params}
        for name in raw:
            if name not in declared:
                raise InvalidRequest(
                    safe_field("params", name), f"unknown parameter {_short(name)} for {self.name}"
                )
        values: dict[str, Any] = {}
        for param in self.params:
            where = f"params.{param.name}"
            if param.name in raw and raw[param.name] is not None:
                values[param.name] = param.convert(where, raw[param.name])
            elif param.required:
                raise InvalidRequest(where, "required parameter is missing")
            elif param.default is not None:
                values[param.name] = param.convert(where, param.default)
        self.check(values)
        return values

    def check(self, values: dict[str, Any]) -> None:  # noqa: B027 - optional hook
        """Cross-parameter rules; raise InvalidRequest. Default: none."""

    def _validate_inputs(
        self, raw: Mapping[str, str | Sequence[str]]
    ) -> tuple[dict[str, tuple[str, ...]], list[tuple[str, str]]]:
        if not isinstance(raw, Mapping):
            raise InvalidRequest("inputs", "expected a mapping of port -> source")
        declared = {p.name: p for p in self.inputs}
        for key in raw:
            if key not in declared:
                raise InvalidRequest(
                    safe_field("inputs", key), f"unknown input port {_short(key)} for {self.name}"
                )
        names: dict[str, tuple[str, ...]] = {}
        staging: list[tuple[str, str]] = []
        for port in self.inputs:
            where = f"inputs.{port.name}"
            if port.name not in raw:
                raise InvalidRequest(where, "required input is missing")
            sources = _sources(where, port, raw[port.name])
            names[port.name] = port.file_names(len(sources))
            staging.extend(zip(sources, names[port.name], strict=True))
        return names, staging

    def _validate_outputs(self, raw: Mapping[str, str]) -> dict[str, str]:
        if not isinstance(raw, Mapping):
            raise InvalidRequest("outputs", "expected a mapping of port -> label")
        declared = {p.name for p in self.outputs}
        labels: dict[str, str] = {}
        for port, label in raw.items():
            if port not in declared:
                raise InvalidRequest(
                    safe_field("outputs", port), f"unknown output port {_short(port)}"
                )
            if not isinstance(label, str) or not _LABEL_RE.match(label) or ".." in label:
                raise InvalidRequest(
                    f"outputs.{port}", "label must be 1-64 of A-Z a-z 0-9 _ . - (no '..')"
                )
            labels[port] = label
        return labels

    # -- planning -----------------------------------------------------------
    def arguments(
        self, values: Mapping[str, Any], inputs: Mapping[str, tuple[str, ...]]
    ) -> list[str]:
        """Payload command line: sub-command, ``--param=value``, ``--in-port=file``,
        ``--out-port=file``. Overridable when a tool needs another form."""
        by_name = {p.name: p for p in self.params}
        args = [self.payload_tool]
        args += [f"--{name}={by_name[name].render(v)}" for name, v in values.items()]
        for port, files in inputs.items():
            args += [f"--in-{port}={f}" for f in files]
        args += [f"--out-{p.name}={p.file_name}" for p in self.outputs]
        return args

    def plan(self, request: ToolRequest) -> JobPlan:
        """Validate ``request`` and describe the job; raises InvalidRequest."""
        if request.tool != self.name:
            raise InvalidRequest("tool", f"this connector is {self.name!r}")
        names, staging = self._validate_inputs(request.inputs)
        values = self.validate_params(request.params)
        labels = self._validate_outputs(request.outputs)
        args = tuple(self.arguments(values, names))
        _assert_safe(args, names, self.outputs)
        plan_inputs: dict[str, str | tuple[str, ...]] = {}
        for port in self.inputs:
            plan_inputs[port.name] = names[port.name] if port.multiple else names[port.name][0]
        return JobPlan(
            executable=EOTOOL,
            arguments=args,
            inputs=plan_inputs,
            outputs={p.name: p.file_name for p in self.outputs},
            request_cpus=self.resources.cpus,
            request_memory_mb=self.resources.memory_mb,
            request_disk_mb=self.resources.disk_mb,
            tool=self.name,
            params=values,
            staging=tuple(staging),
            output_labels=labels,
        )

    def describe(self) -> dict[str, Any]:
        """JSON-able description for catalogues and clients."""
        return {
            "name": self.name,
            "description": self.description,
            "inputs": [p.describe() for p in self.inputs],
            "outputs": [p.describe() for p in self.outputs],
            "params": [p.describe() for p in self.params],
            "resources": {
                "cpus": self.resources.cpus,
                "memory_mb": self.resources.memory_mb,
                "disk_mb": self.resources.disk_mb,
            },
        }


def _sources(where: str, port: InputPort, value: object) -> list[str]:
    if port.multiple:
        if isinstance(value, str) or not isinstance(value, Sequence):
            raise InvalidRequest(where, "expected a list of sources")
        sources = list(value)
        if not port.min_count <= len(sources) <= port.max_count:
            raise InvalidRequest(
                where, f"expected {port.min_count} to {port.max_count} sources, got {len(sources)}"
            )
    else:
        if not isinstance(value, str):
            raise InvalidRequest(where, "expected one source")
        sources = [value]
    for source in sources:
        if not isinstance(source, str) or not 0 < len(source) <= MAX_SOURCE_LEN:
            raise InvalidRequest(where, f"a source must be a string of 1-{MAX_SOURCE_LEN} chars")
        if any(ord(c) < 32 or ord(c) == 127 for c in source):
            raise InvalidRequest(where, "control characters in source")
    return sources


def _assert_safe(
    args: Sequence[str], names: Mapping[str, tuple[str, ...]], outputs: Sequence[OutputPort]
) -> None:
    """Last line of defence: a plan never leaves with an argument or file name outside
    the safe alphabets, whatever a connector subclass did."""
    for arg in args:
        if not _SAFE_ARG_RE.match(arg):
            raise InvalidRequest("params", f"unsafe job argument {_short(arg)}")
    files = [f for group in names.values() for f in group] + [p.file_name for p in outputs]
    for name in files:
        if not _FILE_RE.match(name):
            raise InvalidRequest("inputs", f"unsafe sandbox file name {_short(name)}")

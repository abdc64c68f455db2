"""The typed workflow document that both forms (SiLK, structured JSON) parse into.

A document is a set of nodes joined by edges from an output port to an input port.
*Start* nodes run nothing: their output ports name the initial data (one source, or a
list of sources: one branch per source, i.e. a fan-out). *Tool* nodes name a
connector, either directly (``tool`` + typed ``params``) or in GiSHEO notation
(``processing`` + ``argument_list``). Meta-attributes gproc does not interpret are
kept in ``meta`` and passed on to the node's jobs.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from gproc.errors import InvalidRequest

NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,31}$")
"""Node, port and workflow-input names: the only user strings used inside a DAG."""

MAX_META_KEY = 64
MAX_META_VALUE = 1024


class WorkflowError(InvalidRequest):
    """A workflow document is refused; ``field`` names the node, edge or line."""

    code = "Client.InvalidWorkflow"


class WorkflowSyntaxError(WorkflowError):
    """The text does not parse; ``line`` and ``column`` point at the problem."""

    def __init__(self, message: str, line: int, column: int) -> None:
        super().__init__(f"line {line}, column {column}: {message}", field="silk")
        self.line = line
        self.column = column


@dataclass(frozen=True)
class PortRef:
    node: str
    port: str

    def __str__(self) -> str:
        return f"{self.node}.{self.port}"


@dataclass(frozen=True)
class Edge:
    source: PortRef
    target: PortRef

    def __str__(self) -> str:
        return f"{self.source} -> {self.target}"


@dataclass(frozen=True)
class Node:
    """One task of the document (see the module docstring)."""

    name: str
    inputs: tuple[str, ...] = ()  # declared input ports, in order
    outputs: tuple[str, ...] = ()  # declared output ports, in order
    tool: str | None = None
    params: Mapping[str, Any] = field(default_factory=dict)
    processing: str | None = None
    argument_list: str = ""
    sources: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # start nodes
    instances: int = 1  # start nodes: how many sources (branches) each output port gives
    is_last: bool = False
    meta: Mapping[str, str] = field(default_factory=dict)

    @property
    def is_start(self) -> bool:
        return self.tool is None and self.processing is None


@dataclass(frozen=True)
class WorkflowDoc:
    name: str
    nodes: tuple[Node, ...]
    edges: tuple[Edge, ...]
    form: str  # "silk" or "json"
    keep_intermediate: bool = False

    def node(self, name: str) -> Node | None:
        return next((n for n in self.nodes if n.name == name), None)


def check_name(value: object, what: str) -> str:
    if not isinstance(value, str) or not NAME_RE.fullmatch(value):
        shown = repr(value)[:40]
        raise WorkflowError(
            f"{what} {shown} must be a letter then up to 31 letters, digits or _", field=what
        )
    return value


def check_meta(key: str, value: str, where: str) -> None:
    """Meta-attributes are passed on to jobs: printable, bounded, no control characters."""
    for text, limit in ((key, MAX_META_KEY), (value, MAX_META_VALUE)):
        if len(text) > limit or any(ord(c) < 32 or ord(c) == 127 for c in text):
            raise WorkflowError(
                f"meta-attribute {key[:40]!r}: at most {limit} printable characters",
                field=where,
            )

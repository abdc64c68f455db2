"""Tool connectors: a processing tool's typed interface and how it becomes a job.

A connector declares its inputs, outputs and parameters, validates a request
and plans the job. It knows nothing about any WMS: the core turns a
:class:`JobPlan` into a ``wrappers.base.JobSpec``.
"""

from __future__ import annotations

from abc import ABC
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar


class InvalidRequest(ValueError):
    """A request a connector refuses; ``field`` names what is wrong."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class UnknownTool(LookupError):
    def __init__(self, name: str) -> None:
        super().__init__(f"unknown tool {name!r}")
        self.name = name


ParamValue = int | float | str | bool


@dataclass(frozen=True)
class ToolRequest:
    """What a caller asks for. ``inputs`` maps input port -> source reference
    (resolved and staged by the core); ``params`` holds raw, unvalidated values."""

    tool: str
    inputs: Mapping[str, str]
    params: Mapping[str, str | int | float | bool] = field(default_factory=dict)
    outputs: Mapping[str, str] = field(default_factory=dict)  # optional port -> user label


@dataclass(frozen=True)
class JobPlan:
    """The job a connector wants: all names and arguments already safe."""

    executable: Path  # a payload script shipped in connectors/payload
    arguments: tuple[str, ...]
    inputs: Mapping[str, str]  # input port -> file name in the job sandbox
    outputs: Mapping[str, str]  # output port -> file name in the job sandbox
    request_cpus: int = 1
    request_memory_mb: int = 512
    request_disk_mb: int = 1024


class Connector(ABC):
    """Base of all tool connectors (see ``connectors/tools``)."""

    name: ClassVar[str]
    description: ClassVar[str]
    # subclasses declare ports and params; see connectors.params

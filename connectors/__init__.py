"""Processing tool connectors: typed tool interfaces that become jobs (see base.py).

API: ``get_connector(name)`` (raises UnknownTool), ``list_connectors()``,
``connector.plan(ToolRequest) -> JobPlan`` (raises InvalidRequest naming the field),
``connector.describe() -> dict``; ``connectors.gisheo.parse`` turns GiSHEO notation
into a ToolRequest. Every plan runs ``connectors/payload/eotool.py`` on the execute side.
"""

from gproc.connectors.base import (
    Connector,
    InputPort,
    InvalidRequest,
    JobPlan,
    OutputPort,
    ToolRequest,
    UnknownTool,
)
from gproc.connectors.registry import get_connector, list_connectors

__all__ = [
    "Connector",
    "InputPort",
    "InvalidRequest",
    "JobPlan",
    "OutputPort",
    "ToolRequest",
    "UnknownTool",
    "get_connector",
    "list_connectors",
]

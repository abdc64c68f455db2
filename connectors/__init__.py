"""Processing tool connectors: typed tool interfaces that become jobs (see base.py)."""

from connectors.base import (
    Connector,
    InputPort,
    InvalidRequest,
    JobPlan,
    OutputPort,
    ToolRequest,
    UnknownTool,
)
from connectors.registry import get_connector, list_connectors

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

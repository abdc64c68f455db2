"""The connectors gproc offers. Adding a tool: one module in connectors/tools, one line here."""

from __future__ import annotations

from gproc.connectors.base import Connector, UnknownTool
from gproc.connectors.tools.band import BandConnector
from gproc.connectors.tools.canny import CannyConnector
from gproc.connectors.tools.equalize import EqualizeConnector
from gproc.connectors.tools.grayscale import GrayscaleConnector
from gproc.connectors.tools.hough import HoughConnector
from gproc.connectors.tools.modis_lst import ModisLstConnector
from gproc.connectors.tools.ndvi import NdviConnector
from gproc.connectors.tools.quantize import QuantizeConnector
from gproc.connectors.tools.threshold import ThresholdConnector
from gproc.connectors.tools.warp import ClipConnector, MosaicConnector, ReprojectConnector

CONNECTOR_CLASSES: tuple[type[Connector], ...] = (
    GrayscaleConnector,
    EqualizeConnector,
    QuantizeConnector,
    ThresholdConnector,
    CannyConnector,
    HoughConnector,
    BandConnector,
    NdviConnector,
    ReprojectConnector,
    MosaicConnector,
    ClipConnector,
    ModisLstConnector,
)

_BY_NAME: dict[str, Connector] = {cls.name: cls() for cls in CONNECTOR_CLASSES}
if len(_BY_NAME) != len(CONNECTOR_CLASSES):
    raise RuntimeError("two connectors share a name")


def get_connector(name: str) -> Connector:
    """The connector called ``name``; raises UnknownTool."""
    if not isinstance(name, str) or name not in _BY_NAME:
        raise UnknownTool(name if isinstance(name, str) else repr(name))
    return _BY_NAME[name]


def list_connectors() -> list[Connector]:
    return list(_BY_NAME.values())

"""Extraction of one band (gdal_translate -b)."""

from __future__ import annotations

from gproc.connectors.base import Connector
from gproc.connectors.tools.common import IMAGE, SMALL, band


class BandConnector(Connector):
    name = "band"
    description = "One band of a multi-band raster, values and type unchanged (gdal_translate -b)."
    payload_tool = "band"
    inputs = (IMAGE,)
    params = (band("Band to extract (1-based)"),)
    resources = SMALL

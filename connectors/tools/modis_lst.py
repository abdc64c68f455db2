"""MODIS land surface temperature (MOD11/MYD11 LST_*_1km) to degrees Celsius."""

from __future__ import annotations

from gproc.connectors.base import Connector
from gproc.connectors.params import FloatParam
from gproc.connectors.tools.common import IMAGE, SMALL, band


class ModisLstConnector(Connector):
    name = "modis_lst"
    description = (
        "MODIS LST digital numbers to degrees Celsius: scale_factor * DN - 273.15 as float32; "
        "DN 0 (fill) becomes nodata (-9999)."
    )
    payload_tool = "lst"
    inputs = (IMAGE,)
    params = (
        FloatParam(
            "scale_factor",
            "Kelvin per digital number (0.02 for MOD11A1/A2)",
            0.02,
            minimum=1e-6,
            maximum=1.0,
        ),
        band(),
    )
    resources = SMALL

"""Quantization of one band to N evenly spaced grey levels."""

from __future__ import annotations

from gproc.connectors.base import Connector
from gproc.connectors.params import IntParam
from gproc.connectors.tools.common import IMAGE, SMALL, band


class QuantizeConnector(Connector):
    name = "quantize"
    description = (
        "Reduce one band to `levels` grey levels: the band's value range [min, max] is cut "
        "into equal intervals; interval k becomes round(k * 255 / (levels - 1)) (8-bit output)."
    )
    payload_tool = "quantize"
    inputs = (IMAGE,)
    params = (
        IntParam("levels", "Number of grey levels", 8, minimum=2, maximum=256),
        band(),
    )
    resources = SMALL

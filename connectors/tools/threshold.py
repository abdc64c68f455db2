"""Binary threshold of one band (fixed value or Otsu)."""

from __future__ import annotations

from gproc.connectors.base import Connector
from gproc.connectors.params import ChoiceParam, FloatParam, IntParam
from gproc.connectors.tools.common import IMAGE, SMALL, band


class ThresholdConnector(Connector):
    name = "threshold"
    description = (
        "Binary image of one band: pixels strictly above the threshold become max_value, the "
        "others 0. method=otsu picks the threshold itself (Otsu; bands that are not 8-bit are "
        "first stretched linearly to 0-255)."
    )
    payload_tool = "threshold"
    inputs = (IMAGE,)
    params = (
        FloatParam("value", "Threshold (method=binary)", 128.0, minimum=-1e12, maximum=1e12),
        IntParam("max_value", "Value of pixels above the threshold", 255, minimum=1, maximum=255),
        ChoiceParam("method", "How the threshold is chosen", "binary", choices=("binary", "otsu")),
        band(),
    )
    resources = SMALL

"""Histogram equalization (OpenCV equalizeHist) of one band."""

from __future__ import annotations

from gproc.connectors.base import Connector
from gproc.connectors.tools.common import IMAGE, SMALL, band


class EqualizeConnector(Connector):
    name = "equalize"
    description = (
        "Histogram equalization of one band to 8 bits (cv2.equalizeHist); bands that are "
        "not 8-bit are first stretched linearly to 0-255."
    )
    payload_tool = "equalize"
    inputs = (IMAGE,)
    params = (band(),)
    resources = SMALL

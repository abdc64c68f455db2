"""Canny edge detection (OpenCV), with GiSHEO's canny1/canny2/aperture_size."""

from __future__ import annotations

from gproc.connectors.base import Connector
from gproc.connectors.params import BoolParam
from gproc.connectors.tools.common import IMAGE, SMALL, band, canny_params


class CannyConnector(Connector):
    name = "canny"
    description = (
        "Canny edge map of one band (cv2.Canny): 255 on edges, 0 elsewhere. Bands that are not "
        "8-bit are first stretched linearly to 0-255."
    )
    payload_tool = "canny"
    inputs = (IMAGE,)
    params = (
        *canny_params(),
        BoolParam("l2gradient", "Use the L2 norm for the gradient magnitude", False),
        band(),
    )
    resources = SMALL

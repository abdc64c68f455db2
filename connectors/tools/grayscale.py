"""RGB -> one grey band (ITU-R BT.601 luma weights, OpenCV for 8-bit input)."""

from __future__ import annotations

from gproc.connectors.base import Connector
from gproc.connectors.params import ChoiceParam, IntParam
from gproc.connectors.tools.common import IMAGE, SMALL


class GrayscaleConnector(Connector):
    name = "grayscale"
    description = (
        "Grey-level conversion of a colour raster: luminosity = 0.299 R + 0.587 G + 0.114 B, "
        "or the plain average of the three bands."
    )
    payload_tool = "grayscale"
    inputs = (IMAGE,)
    params = (
        ChoiceParam(
            "method", "Weighting of the bands", "luminosity", choices=("luminosity", "average")
        ),
        IntParam("red_band", "Band holding red", 1, minimum=1, maximum=1000),
        IntParam("green_band", "Band holding green", 2, minimum=1, maximum=1000),
        IntParam("blue_band", "Band holding blue", 3, minimum=1, maximum=1000),
    )
    resources = SMALL

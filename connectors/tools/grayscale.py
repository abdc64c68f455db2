"""RGB -> one grey band (ITU-R BT.601 luma weights, computed as the description says)."""

from __future__ import annotations

from gproc.connectors.base import Connector
from gproc.connectors.params import ChoiceParam, IntParam
from gproc.connectors.tools.common import IMAGE, SMALL


class GrayscaleConnector(Connector):
    name = "grayscale"
    description = (
        "Grey-level conversion of a colour raster: luminosity = 0.299 R + 0.587 G + 0.114 B, "
        "or the plain average (R + G + B) / 3, computed in double precision; integer "
        "rasters are rounded to the nearest level (halves to even)."
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

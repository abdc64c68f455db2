"""NDVI = (NIR - red) / (NIR + red) from two rasters."""

from __future__ import annotations

from gproc.connectors.base import Connector, InputPort
from gproc.connectors.params import IntParam
from gproc.connectors.tools.common import MEDIUM


class NdviConnector(Connector):
    name = "ndvi"
    description = (
        "Normalized difference vegetation index (NIR - red) / (NIR + red) as float32; "
        "nodata (-9999) where NIR + red == 0 or either input is nodata. Both rasters must "
        "share the same grid."
    )
    payload_tool = "ndvi"
    inputs = (
        InputPort("red", "Raster holding the red band", accepts=("MULTISPECTRAL",)),
        InputPort("nir", "Raster holding the near-infrared band", accepts=("MULTISPECTRAL",)),
    )
    params = (
        IntParam("red_band", "Band of the red raster to use", 1, minimum=1, maximum=1000),
        IntParam("nir_band", "Band of the NIR raster to use", 1, minimum=1, maximum=1000),
    )
    resources = MEDIUM

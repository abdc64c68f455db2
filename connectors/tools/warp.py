"""gdalwarp-based connectors: reprojection, mosaic and clip."""

from __future__ import annotations

from gproc.connectors.base import Connector, InputPort
from gproc.connectors.params import BBoxParam, ChoiceParam, FloatParam, IntParam, Param
from gproc.connectors.tools.common import IMAGE, WARP

RESAMPLING = ("near", "bilinear", "cubic", "cubicspline", "lanczos", "average", "mode")


def _epsg(required: bool, default: int | None) -> IntParam:
    return IntParam(
        "epsg",
        "Target coordinate system as an EPSG code",
        default,
        required=required,
        minimum=1024,
        maximum=999999,
    )


def _common() -> tuple[Param, ...]:
    return (
        ChoiceParam("resampling", "Resampling method", "near", choices=RESAMPLING),
        FloatParam(
            "resolution",
            "Target pixel size in target CRS units (default: gdalwarp's)",
            minimum=1e-9,
            maximum=1e9,
        ),
    )


class ReprojectConnector(Connector):
    name = "reproject"
    description = (
        "Reprojection with gdalwarp to an EPSG coordinate system, optionally clipped to a "
        "bounding box expressed in the target system."
    )
    payload_tool = "warp"
    inputs = (IMAGE,)
    params = (
        _epsg(required=False, default=4326),
        BBoxParam("bbox", "Optional xmin,ymin,xmax,ymax in the target coordinate system"),
        *_common(),
    )
    resources = WARP


class MosaicConnector(Connector):
    name = "mosaic"
    description = (
        "Mosaic of several rasters with gdalwarp (later inputs win where they overlap), "
        "reprojected to an EPSG coordinate system and optionally clipped to a bounding box."
    )
    payload_tool = "warp"
    inputs = (
        InputPort(
            "inputs", "Rasters to mosaic, in order", multiple=True, min_count=2, max_count=64
        ),
    )
    params = ReprojectConnector.params
    resources = WARP


class ClipConnector(Connector):
    name = "clip"
    description = (
        "Clip to a bounding box with gdalwarp. Without epsg the raster keeps its coordinate "
        "system and the box is in that system; with epsg the box is in the target system."
    )
    payload_tool = "warp"
    inputs = (IMAGE,)
    params = (
        BBoxParam("bbox", "xmin,ymin,xmax,ymax", required=True),
        _epsg(required=False, default=None),
        *_common(),
    )
    resources = WARP

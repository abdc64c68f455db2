"""Probabilistic Hough line detection on a Canny edge map (OpenCV)."""

from __future__ import annotations

from gproc.connectors.base import Connector, OutputPort
from gproc.connectors.params import FloatParam, IntParam
from gproc.connectors.tools.common import IMAGE, MEDIUM, band, canny_params


class HoughConnector(Connector):
    name = "hough"
    description = (
        "Line segments found by cv2.HoughLinesP on the Canny edges of one band. Outputs a "
        "raster with the segments drawn (255 on 0) and a JSON list of the segments in pixel "
        "and map coordinates."
    )
    payload_tool = "hough"
    inputs = (IMAGE,)
    outputs = (
        OutputPort("output", "Raster with the detected segments drawn (GeoTIFF)"),
        OutputPort("lines", "Detected segments (JSON)", "lines.json", "application/json"),
    )
    params = (
        *canny_params(),
        FloatParam(
            "rho", "Distance resolution of the accumulator (pixels)", 1.0, minimum=0.1, maximum=100
        ),
        FloatParam(
            "theta", "Angle resolution of the accumulator (degrees)", 1.0, minimum=0.01, maximum=90
        ),
        IntParam("threshold", "Minimum votes for a line", 50, minimum=1, maximum=100000),
        FloatParam(
            "min_line_length", "Shortest segment kept (pixels)", 30.0, minimum=0, maximum=1e6
        ),
        FloatParam(
            "max_line_gap",
            "Largest gap joined within a segment (pixels)",
            5.0,
            minimum=0,
            maximum=1e6,
        ),
        IntParam(
            "max_lines", "At most this many segments (longest first)", 100, minimum=1, maximum=10000
        ),
        band(),
    )
    resources = MEDIUM

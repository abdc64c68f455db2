"""Ports, parameters and resource sizes shared by several connectors."""

from __future__ import annotations

from gproc.connectors.base import InputPort, Resources
from gproc.connectors.params import FloatParam, IntParam

IMAGE = InputPort("image", "Input raster (GeoTIFF)")


def band(description: str = "Band of the input raster to use (1-based)") -> IntParam:
    return IntParam("band", description, default=1, minimum=1, maximum=1000)


def canny_params() -> tuple[IntParam | FloatParam, ...]:
    """GiSHEO's Canny parameters: hysteresis thresholds and Sobel aperture."""
    return (
        FloatParam("canny1", "First (lower) hysteresis threshold", 100.0, minimum=0, maximum=10000),
        FloatParam(
            "canny2", "Second (upper) hysteresis threshold", 200.0, minimum=0, maximum=10000
        ),
        IntParam("aperture_size", "Sobel aperture size", 3, choices=(3, 5, 7)),
    )


# Whole rasters are held in memory by the payload: sized for scenes of ~100 Mpixel float32.
SMALL = Resources(cpus=1, memory_mb=512, disk_mb=1024)
MEDIUM = Resources(cpus=1, memory_mb=1024, disk_mb=2048)
WARP = Resources(cpus=1, memory_mb=1024, disk_mb=4096)

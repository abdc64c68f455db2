"""Small GeoTIFFs in several CRSs for the catalogue tests (written with rasterio)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import rasterio
from rasterio.transform import from_origin

# name -> (crs, west, north, pixel size, width, height, bands, dtype, nodata)
RASTERS: dict[str, tuple[str, float, float, float, int, int, int, str, float | None]] = {
    # a 300 km UTM 34N box over western Romania (Timisoara at ~21.23E 45.75N)
    "utm34": ("EPSG:32634", 300000.0, 5200000.0, 1000.0, 300, 300, 1, "uint16", 0.0),
    "geo": ("EPSG:4326", 16.69, 48.48, 0.05, 162, 90, 3, "uint8", None),
    "merc": ("EPSG:3857", 2500000.0, 5800000.0, 2000.0, 100, 80, 1, "float32", -9999.0),
    "stereo70": ("EPSG:3844", 400000.0, 500000.0, 500.0, 120, 100, 2, "int16", -1.0),
}


def write_raster(path: Path, name: str) -> Path:
    crs, west, north, px, w, h, bands, dtype, nodata = RASTERS[name]
    rng = np.random.default_rng(abs(hash(name)) % 2**32)
    data = (rng.random((bands, h, w)) * 200 + 1).astype(dtype)
    profile = {
        "driver": "GTiff",
        "width": w,
        "height": h,
        "count": bands,
        "dtype": dtype,
        "crs": crs,
        "transform": from_origin(west, north, px, px),
    }
    if nodata is not None:
        profile["nodata"] = nodata
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
    return path

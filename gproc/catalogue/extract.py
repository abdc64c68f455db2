"""Raster metadata and quicklooks read with rasterio (GDAL) at registration.

The footprint is the raster's extent traced in its native CRS and reprojected to
EPSG:4326 with ``DENSIFY`` points per edge: a straight edge in UTM is a curve in
longitude/latitude, and reprojecting only the four corners would cut it short.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import rasterio
from rasterio.errors import RasterioError
from rasterio.io import MemoryFile
from rasterio.warp import transform as warp_transform
from shapely.geometry import Polygon

from gproc.catalogue.model import NotARaster, RasterInfo

DENSIFY = 21  # points per edge, corners included
QUICKLOOK_PX = 256


def crs_text(crs: rasterio.crs.CRS | None) -> str:
    """``EPSG:<code>`` when the CRS has one, else its WKT."""
    if crs is None:
        return ""
    epsg = crs.to_epsg()
    return f"EPSG:{epsg}" if epsg else crs.to_wkt()


def edge_points(width: int, height: int, n: int = DENSIFY) -> list[tuple[float, float]]:
    """Pixel coordinates around the raster's outline, counter-clockwise, n per edge."""
    steps = [i / (n - 1) for i in range(n - 1)]
    # bottom (left to right), right (up), top (right to left), left (down)
    pts: list[tuple[float, float]] = [(width * t, float(height)) for t in steps]
    pts += [(float(width), height * (1 - t)) for t in steps]
    pts += [(width * (1 - t), 0.0) for t in steps]
    pts += [(0.0, height * t) for t in steps]
    return pts


def footprint(src: rasterio.io.DatasetReader) -> Polygon:
    """The raster's outline in EPSG:4326, densified (see module docstring)."""
    pixels = edge_points(src.width, src.height)
    xs, ys = zip(*(src.transform @ p for p in pixels), strict=True)
    if src.crs is None:
        raise NotARaster("the raster has no coordinate reference system", field="location")
    if crs_text(src.crs) != "EPSG:4326":
        lons, lats = warp_transform(src.crs, "EPSG:4326", list(xs), list(ys))
    else:
        lons, lats = list(xs), list(ys)
    coords = [(round(x, 9), round(y, 9)) for x, y in zip(lons, lats, strict=True)]
    if not all(math.isfinite(v) for c in coords for v in c):
        raise NotARaster("the extent does not map to longitude/latitude", field="location")
    poly = Polygon(coords)
    if not poly.is_valid:
        poly = poly.buffer(0)
    return poly


def read_info(path: str | Path) -> RasterInfo:
    """Metadata of the raster file at ``path``; NotARaster when GDAL cannot read it."""
    try:
        with rasterio.open(path) as src:
            poly = footprint(src)
            nodata = src.nodata
            return RasterInfo(
                footprint_wkt=poly.wkt,
                bbox=tuple(float(v) for v in poly.bounds),  # type: ignore[arg-type]
                crs=crs_text(src.crs),
                resolution=(abs(float(src.res[0])), abs(float(src.res[1]))),
                width=int(src.width),
                height=int(src.height),
                bands=int(src.count),
                dtype=str(src.dtypes[0]),
                nodata=None if nodata is None or math.isnan(nodata) else float(nodata),
                driver=str(src.driver),
            )
    except RasterioError as exc:
        raise NotARaster(f"not a raster GDAL can read: {exc}", field="location") from None


def quicklook_png(path: str | Path, size: int = QUICKLOOK_PX) -> bytes:
    """A small PNG rendering: bands 1-3 (or 1), 2-98 percentile stretch, nodata clear."""
    try:
        with rasterio.open(path) as src:
            scale = max(src.width, src.height) / size
            w = max(1, round(src.width / max(scale, 1)))
            h = max(1, round(src.height / max(scale, 1)))
            bands = [1, 2, 3] if src.count >= 3 else [1]
            data = src.read(bands, out_shape=(len(bands), h, w), masked=True)
    except RasterioError as exc:
        raise NotARaster(f"not a raster GDAL can read: {exc}", field="location") from None
    out = np.zeros((len(bands) + 1, h, w), dtype=np.uint8)
    valid = ~np.ma.getmaskarray(data).any(axis=0)
    for i in range(len(bands)):
        band = np.ma.filled(data[i].astype("float64"), np.nan)
        finite = band[valid & np.isfinite(band)]
        lo, hi = np.percentile(finite, [2, 98]) if finite.size else (0.0, 1.0)
        stretched = np.clip((band - lo) / ((hi - lo) or 1.0) * 255.0, 0, 255)
        out[i] = np.nan_to_num(stretched).astype(np.uint8)
    out[-1] = np.where(valid, 255, 0).astype(np.uint8)  # alpha
    with MemoryFile() as mem:
        with mem.open(driver="PNG", width=w, height=h, count=out.shape[0], dtype="uint8") as dst:
            dst.write(out)
        return bytes(mem.read())

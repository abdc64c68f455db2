#!/usr/bin/env python3
"""gproc execute-side payload: Earth-observation raster tools on GeoTIFFs.

Runs on the execute node with the system Python, GDAL, NumPy and OpenCV
(Debian python3-gdal, python3-numpy, python3-opencv). Usage:

    eotool.py TOOL [--param=value ...] --in-PORT=FILE ... --out-PORT=FILE ...

Arguments are produced by gproc connectors from validated values only; they are
checked again here (argparse types, sandbox file names) because this script is
the last thing between a job description and the tools. ``warp`` calls the
``gdalwarp`` program with a list argv, never through a shell.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import subprocess
import sys
from typing import Any

import numpy as np
from osgeo import gdal

gdal.UseExceptions()

NODATA = -9999.0
GTIFF_OPTIONS = ["COMPRESS=DEFLATE"]
_FILE_RE = re.compile(r"^[a-z][a-z0-9_]{0,40}\.(tif|json)$")
_NAME_RE = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
RESAMPLING = ("near", "bilinear", "cubic", "cubicspline", "lanczos", "average", "mode")


class ToolError(Exception):
    """A failure worth a one-line message on stderr and exit code 1."""


# -- argument types -------------------------------------------------------------
def sandbox_file(text: str) -> str:
    """Only plain file names inside the job sandbox."""
    if not _FILE_RE.match(text):
        raise argparse.ArgumentTypeError(f"not a sandbox file name: {text!r}")
    return text


def finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError("not a finite number")
    return value


def flag(text: str) -> bool:
    if text not in ("0", "1"):
        raise argparse.ArgumentTypeError("expected 0 or 1")
    return text == "1"


def bbox(text: str) -> tuple[float, ...]:
    parts = tuple(finite_float(p) for p in text.split(","))
    if len(parts) != 4 or not (parts[0] < parts[2] and parts[1] < parts[3]):
        raise argparse.ArgumentTypeError("expected xmin,ymin,xmax,ymax")
    return parts


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("expected a positive integer")
    return value


CANNY = {"canny1": finite_float, "canny2": finite_float, "aperture_size": (3, 5, 7)}
WARP = {"epsg": positive_int, "bbox": bbox, "resampling": RESAMPLING, "resolution": finite_float}
# tool -> (input ports, output ports, {param: type or tuple of choices}); "*" = repeated port
TOOLS: dict[str, tuple[tuple[str, ...], tuple[str, ...], dict[str, Any]]] = {
    "grayscale": (
        ("image",),
        ("output",),
        {
            "method": ("luminosity", "average"),
            "red_band": positive_int,
            "green_band": positive_int,
            "blue_band": positive_int,
        },
    ),
    "equalize": (("image",), ("output",), {"band": positive_int}),
    "quantize": (("image",), ("output",), {"levels": positive_int, "band": positive_int}),
    "threshold": (
        ("image",),
        ("output",),
        {
            "value": finite_float,
            "max_value": positive_int,
            "method": ("binary", "otsu"),
            "band": positive_int,
        },
    ),
    "canny": (("image",), ("output",), {**CANNY, "l2gradient": flag, "band": positive_int}),
    "hough": (
        ("image",),
        ("output", "lines"),
        {
            **CANNY,
            "rho": finite_float,
            "theta": finite_float,
            "threshold": positive_int,
            "min_line_length": finite_float,
            "max_line_gap": finite_float,
            "max_lines": positive_int,
            "band": positive_int,
        },
    ),
    "band": (("image",), ("output",), {"band": positive_int}),
    "ndvi": (("red", "nir"), ("output",), {"red_band": positive_int, "nir_band": positive_int}),
    "lst": (("image",), ("output",), {"scale_factor": finite_float, "band": positive_int}),
    "warp": (("image", "inputs*"), ("output",), WARP),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="eotool.py", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="tool", required=True)
    for tool, (ins, outs, params) in TOOLS.items():
        tp = sub.add_parser(tool)
        for port in ins:
            name = port.rstrip("*")
            tp.add_argument(
                f"--in-{name}",
                dest=f"in_{name}",
                type=sandbox_file,
                action="append",
                required=not port.endswith("*") and tool != "warp",
            )
        for port in outs:
            tp.add_argument(f"--out-{port}", dest=f"out_{port}", type=sandbox_file, required=True)
        for pname, ptype in params.items():
            if isinstance(ptype, tuple):
                kind = type(ptype[0])
                tp.add_argument(f"--{pname}", type=kind, choices=ptype)
            else:
                tp.add_argument(f"--{pname}", type=ptype)
    return parser


# -- raster helpers -------------------------------------------------------------
def open_raster(path: str) -> gdal.Dataset:
    try:
        return gdal.Open(path, gdal.GA_ReadOnly)
    except RuntimeError as exc:
        raise ToolError(f"cannot open {path}: {exc}") from exc


def read_band(ds: gdal.Dataset, band: int) -> tuple[np.ndarray, np.ndarray]:
    """Band values and a mask of nodata pixels."""
    if not 1 <= band <= ds.RasterCount:
        raise ToolError(f"band {band} does not exist (raster has {ds.RasterCount})")
    rb = ds.GetRasterBand(band)
    data = rb.ReadAsArray()
    nodata = rb.GetNoDataValue()
    mask = np.zeros(data.shape, dtype=bool) if nodata is None else (data == nodata)
    if np.issubdtype(data.dtype, np.floating):
        mask |= np.isnan(data)
    return data, mask


def write_like(
    ref: gdal.Dataset, path: str, data: np.ndarray, gdal_type: int, nodata: float | None = None
) -> None:
    """Write one band on the grid and in the coordinate system of ``ref``."""
    rows, cols = data.shape
    out = gdal.GetDriverByName("GTiff").Create(
        path, cols, rows, 1, gdal_type, options=GTIFF_OPTIONS
    )
    out.SetGeoTransform(ref.GetGeoTransform())
    out.SetProjection(ref.GetProjection())
    band = out.GetRasterBand(1)
    if nodata is not None:
        band.SetNoDataValue(nodata)
    band.WriteArray(data)
    out.FlushCache()
    out = None


def to_uint8(data: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """8-bit data unchanged; anything else stretched linearly from [min, max] to 0-255."""
    if data.dtype == np.uint8:
        return data
    valid = data[~mask]
    low, high = (float(valid.min()), float(valid.max())) if valid.size else (0.0, 0.0)
    if high <= low:
        return np.zeros(data.shape, dtype=np.uint8)
    scaled = (data.astype(np.float64) - low) * (255.0 / (high - low))
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)


def cv2_module():  # type: ignore[no-untyped-def]
    import cv2  # imported late: tools without OpenCV do not need it

    return cv2


# -- tools ------------------------------------------------------------------------
def tool_grayscale(a: argparse.Namespace) -> None:
    ds = open_raster(a.in_image[0])
    bands = [read_band(ds, b)[0] for b in (a.red_band, a.green_band, a.blue_band)]
    dtype = bands[0].dtype
    # exactly the formula the connector describes, in float64, rounded to the nearest
    # level (halves to even) for integer rasters (not cv2.cvtColor: its fixed-point
    # BT.601 arithmetic differs from the formula by one level on some pixels)
    r, g, b = (band.astype(np.float64) for band in bands)
    grey = 0.299 * r + 0.587 * g + 0.114 * b if a.method == "luminosity" else (r + g + b) / 3
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        grey = np.clip(np.rint(grey), info.min, info.max)
    grey = grey.astype(dtype)
    write_like(ds, a.out_output, grey, ds.GetRasterBand(a.red_band).DataType)


def tool_equalize(a: argparse.Namespace) -> None:
    ds = open_raster(a.in_image[0])
    data, mask = read_band(ds, a.band)
    write_like(ds, a.out_output, cv2_module().equalizeHist(to_uint8(data, mask)), gdal.GDT_Byte)


def tool_quantize(a: argparse.Namespace) -> None:
    if a.levels < 2 or a.levels > 256:
        raise ToolError("levels must be within 2..256")
    ds = open_raster(a.in_image[0])
    data, mask = read_band(ds, a.band)
    values = data.astype(np.float64)
    valid = values[~mask]
    low, high = (valid.min(), valid.max()) if valid.size else (0.0, 0.0)
    span = high - low if high > low else 1.0
    index = np.clip(np.floor((values - low) / span * a.levels), 0, a.levels - 1)
    out = np.rint(index * (255.0 / (a.levels - 1))).astype(np.uint8)
    write_like(ds, a.out_output, out, gdal.GDT_Byte)


def tool_threshold(a: argparse.Namespace) -> None:
    cv2 = cv2_module()
    ds = open_raster(a.in_image[0])
    data, mask = read_band(ds, a.band)
    if a.method == "otsu":
        _, out = cv2.threshold(
            to_uint8(data, mask), 0, a.max_value, cv2.THRESH_BINARY | cv2.THRESH_OTSU
        )
    elif data.dtype == np.float32 or (data.dtype.kind in "ui" and data.dtype.itemsize <= 2):
        _, out = cv2.threshold(data.astype(np.float32), a.value, a.max_value, cv2.THRESH_BINARY)
    else:  # float32 cannot hold every value of wider types
        out = np.where(data > a.value, a.max_value, 0)
    write_like(ds, a.out_output, out.astype(np.uint8), gdal.GDT_Byte)


def canny_edges(a: argparse.Namespace, data: np.ndarray, mask: np.ndarray) -> np.ndarray:
    return cv2_module().Canny(
        to_uint8(data, mask),
        a.canny1,
        a.canny2,
        apertureSize=a.aperture_size,
        L2gradient=bool(getattr(a, "l2gradient", False)),
    )


def tool_canny(a: argparse.Namespace) -> None:
    ds = open_raster(a.in_image[0])
    data, mask = read_band(ds, a.band)
    write_like(ds, a.out_output, canny_edges(a, data, mask), gdal.GDT_Byte)


def tool_hough(a: argparse.Namespace) -> None:
    cv2 = cv2_module()
    ds = open_raster(a.in_image[0])
    data, mask = read_band(ds, a.band)
    found = cv2.HoughLinesP(
        canny_edges(a, data, mask),
        a.rho,
        math.radians(a.theta),
        a.threshold,
        minLineLength=a.min_line_length,
        maxLineGap=a.max_line_gap,
    )
    segments = [] if found is None else [tuple(int(v) for v in s[0]) for s in found]
    segments.sort(key=lambda s: -math.hypot(s[2] - s[0], s[3] - s[1]))
    segments = segments[: a.max_lines]
    drawn = np.zeros(data.shape, dtype=np.uint8)
    gt = ds.GetGeoTransform()
    lines = []
    for x1, y1, x2, y2 in segments:
        cv2.line(drawn, (x1, y1), (x2, y2), 255, 1)
        lines.append(
            {
                "x1": x1,
                "y1": y1,
                "x2": x2,
                "y2": y2,
                "length": round(math.hypot(x2 - x1, y2 - y1), 3),
                "map": [pixel_to_map(gt, x1, y1), pixel_to_map(gt, x2, y2)],
            }
        )
    write_like(ds, a.out_output, drawn, gdal.GDT_Byte)
    with open(a.out_lines, "w", encoding="utf-8") as fh:
        json.dump(
            {"count": len(lines), "crs_wkt": ds.GetProjection(), "lines": lines}, fh, indent=1
        )


def pixel_to_map(gt: tuple[float, ...], col: int, row: int) -> list[float]:
    """Map coordinates of a pixel's centre."""
    x, y = col + 0.5, row + 0.5
    return [gt[0] + x * gt[1] + y * gt[2], gt[3] + x * gt[4] + y * gt[5]]


def tool_band(a: argparse.Namespace) -> None:
    ds = open_raster(a.in_image[0])
    read_band(ds, a.band)  # clear error for a missing band
    gdal.Translate(
        a.out_output, ds, bandList=[a.band], format="GTiff", creationOptions=GTIFF_OPTIONS
    )


def tool_ndvi(a: argparse.Namespace) -> None:
    red_ds, nir_ds = open_raster(a.in_red[0]), open_raster(a.in_nir[0])
    red, red_mask = read_band(red_ds, a.red_band)
    nir, nir_mask = read_band(nir_ds, a.nir_band)
    if red.shape != nir.shape:
        raise ToolError(f"red {red.shape} and nir {nir.shape} rasters differ in size")
    red, nir = red.astype(np.float64), nir.astype(np.float64)
    total = nir + red
    bad = red_mask | nir_mask | (total == 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        ndvi = np.where(bad, NODATA, (nir - red) / np.where(bad, 1.0, total))
    write_like(red_ds, a.out_output, ndvi.astype(np.float32), gdal.GDT_Float32, NODATA)


def tool_lst(a: argparse.Namespace) -> None:
    ds = open_raster(a.in_image[0])
    dn, mask = read_band(ds, a.band)
    fill = mask | (dn == 0)
    celsius = np.where(fill, NODATA, a.scale_factor * dn.astype(np.float64) - 273.15)
    write_like(ds, a.out_output, celsius.astype(np.float32), gdal.GDT_Float32, NODATA)


def tool_warp(a: argparse.Namespace) -> None:
    sources = (a.in_image or []) + (a.in_inputs or [])
    if not sources:
        raise ToolError("no input raster")
    argv = [
        "gdalwarp",
        "-overwrite",
        "-of",
        "GTiff",
        "-co",
        "COMPRESS=DEFLATE",
        "-r",
        a.resampling or "near",
    ]
    if a.epsg is not None:
        argv += ["-t_srs", f"EPSG:{a.epsg}"]
    if a.bbox is not None:
        argv += ["-te", *(repr(v) for v in a.bbox)]
    if a.resolution is not None:
        argv += ["-tr", repr(a.resolution), repr(a.resolution)]
    argv += [*sources, a.out_output]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=6 * 3600, check=False)
    if done.returncode != 0:
        raise ToolError(f"gdalwarp failed ({done.returncode}): {done.stderr.strip()[-2000:]}")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        globals()[f"tool_{args.tool}"](args)
    except (ToolError, RuntimeError) as exc:
        print(f"eotool {args.tool}: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

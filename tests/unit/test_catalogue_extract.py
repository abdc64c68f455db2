"""Metadata extraction checked against the stock ``gdalinfo`` and against pyproj."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from pyproj import Transformer
from shapely import wkt
from shapely.geometry import Point, Polygon

from gproc.catalogue.extract import edge_points, quicklook_png, read_info
from gproc.catalogue.model import NotARaster
from tests.catalogue_rasters import RASTERS, write_raster


def gdalinfo(path: Path) -> dict:
    exe = shutil.which("gdalinfo")
    if exe is None:
        pytest.fail("gdalinfo not found: run bin/setup (installs gdal-bin)")
    out = subprocess.run([exe, "-json", str(path)], capture_output=True, check=True, timeout=60)
    return json.loads(out.stdout)


@pytest.mark.parametrize("name", sorted(RASTERS))
def test_metadata_matches_gdalinfo(tmp_path: Path, name: str) -> None:
    path = write_raster(tmp_path / f"{name}.tif", name)
    info = read_info(path)
    ref = gdalinfo(path)
    assert (info.width, info.height) == tuple(ref["size"])
    assert info.bands == len(ref["bands"])
    gdal_type = ref["bands"][0]["type"].lower()
    assert info.dtype == {"byte": "uint8"}.get(gdal_type, gdal_type)
    assert info.driver == ref["driverShortName"]
    assert info.crs == f"EPSG:{ref['stac']['proj:epsg']}"
    gt = ref["geoTransform"]
    assert info.resolution == pytest.approx((abs(gt[1]), abs(gt[5])))
    nodata = ref["bands"][0].get("noDataValue")
    assert info.nodata == (None if nodata is None else pytest.approx(nodata))
    # gdalinfo's WGS84 extent polygon is made of the reprojected corners: each must
    # be a vertex of our footprint (within float noise)
    poly = wkt.loads(info.footprint_wkt)
    for corner in ref["wgs84Extent"]["coordinates"][0]:
        assert poly.exterior.distance(Point(corner)) < 1e-6


def test_utm_footprint_is_the_box_reprojected_by_pyproj(tmp_path: Path) -> None:
    path = write_raster(tmp_path / "utm.tif", "utm34")
    info = read_info(path)
    crs, west, north, px, w, h, *_ = RASTERS["utm34"]
    to_geo = Transformer.from_crs(crs, "EPSG:4326", always_xy=True)
    dense = [to_geo.transform(west + x * px, north - y * px) for x, y in edge_points(w, h, 201)]
    truth = Polygon(dense)
    poly = wkt.loads(info.footprint_wkt)
    assert poly.is_valid and poly.exterior.is_ccw
    # the densified footprint stays within a few metres (1e-4 deg) of the true curve...
    assert poly.hausdorff_distance(truth) < 1e-4
    # ...where the four corners alone would miss it by more than that
    corners = Polygon(
        [
            to_geo.transform(west + x * px, north - y * px)
            for x, y in [(0, h), (w, h), (w, 0), (0, 0)]
        ]
    )
    assert corners.hausdorff_distance(truth) > 5 * poly.hausdorff_distance(truth)
    assert poly.contains(Point(21.2257, 45.7537))  # Timisoara
    minx, miny, maxx, maxy = info.bbox
    assert (minx, miny, maxx, maxy) == pytest.approx(truth.bounds, abs=1e-4)


def test_not_a_raster(tmp_path: Path) -> None:
    bad = tmp_path / "notes.tif"
    bad.write_text("not an image")
    with pytest.raises(NotARaster) as err:
        read_info(bad)
    assert err.value.field == "location"


def test_quicklook_is_a_small_png(tmp_path: Path) -> None:
    import rasterio
    from rasterio.io import MemoryFile

    path = write_raster(tmp_path / "geo.tif", "geo")
    png = quicklook_png(path, size=64)
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    with MemoryFile(png) as mem, mem.open() as ql:
        assert ql.driver == "PNG" and max(ql.width, ql.height) == 64 and ql.count == 4
        assert ql.read(4).max() == 255  # alpha set where data is valid
    assert rasterio.__version__

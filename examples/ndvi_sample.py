"""Quick-start helper: make a small red/NIR GeoTIFF pair, or check an NDVI result.

python examples/ndvi_sample.py make DIR      -> DIR/red.tif DIR/nir.tif
python examples/ndvi_sample.py check DIR NDVI_TIF
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import rasterio
from rasterio.transform import from_origin

PROFILE = {
    "driver": "GTiff",
    "height": 64,
    "width": 64,
    "count": 1,
    "dtype": "uint16",
    "crs": "EPSG:32635",
    "transform": from_origin(500000, 5000000, 30, 30),
}


def make(dest: Path) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    yy, xx = np.mgrid[0:64, 0:64]
    red = (1000 + 20 * xx).astype("uint16")  # vegetation grows to the right
    nir = (1000 + 60 * xx + 5 * yy).astype("uint16")
    for name, band in (("red", red), ("nir", nir)):
        with rasterio.open(dest / f"{name}.tif", "w", **PROFILE) as ds:
            ds.write(band, 1)
    print(f"inputs: {dest / 'red.tif'} {dest / 'nir.tif'}")


def check(src: Path, result: Path) -> int:
    with rasterio.open(src / "red.tif") as r, rasterio.open(src / "nir.tif") as n:
        red, nir = r.read(1).astype("float64"), n.read(1).astype("float64")
    expected = (nir - red) / (nir + red)
    with rasterio.open(result) as ds:
        got = ds.read(1).astype("float64")
        crs = ds.crs
    err = float(np.max(np.abs(got - expected)))
    print(
        f"NDVI {result.name}: {got.shape[1]}x{got.shape[0]} px, CRS {crs}, "
        f"min {got.min():.4f} mean {got.mean():.4f} max {got.max():.4f}; "
        f"max |error| vs NumPy reference {err:.2e}"
    )
    ok = err < 1e-5
    print("RESULT: correct" if ok else "RESULT: WRONG")
    return 0 if ok else 1


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "make":
        make(Path(sys.argv[2]))
    elif len(sys.argv) == 4 and sys.argv[1] == "check":
        sys.exit(check(Path(sys.argv[2]), Path(sys.argv[3])))
    else:
        sys.exit(__doc__)

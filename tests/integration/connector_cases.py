"""One end-to-end case per connector: inputs made on the host, outputs checked numerically.

A case generates small GeoTIFFs with rasterio/NumPy, names the tool and its
parameters, and checks the outputs against values computed here, independently of
the execute-side payload. Used by tests/integration/test_payload_exec.py (payload
run directly in the execute root) and by the core's end-to-end tests (real pool).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import rasterio
from rasterio.crs import CRS
from rasterio.transform import from_origin
from rasterio.warp import Resampling, reproject, transform_bounds
from rasterio.warp import transform as warp_points

from gproc.connectors import ToolRequest
from gproc.connectors.tools.grayscale import GrayscaleConnector

Inputs = dict[str, Path | list[Path]]
UTM = CRS.from_epsg(32635)  # UTM 35N: Romania
NODATA = -9999.0


@dataclass(frozen=True)
class ConnectorCase:
    id: str
    tool: str
    make_inputs: Callable[[Path], Inputs]
    check: Callable[[Mapping[str, Path]], None]
    params: Mapping[str, object] = field(default_factory=dict)

    def request(self, inputs: Inputs) -> ToolRequest:
        """The structured request for inputs made by ``make_inputs``."""
        refs: dict[str, str | Sequence[str]] = {
            port: [str(p) for p in v] if isinstance(v, list) else str(v)
            for port, v in inputs.items()
        }
        return ToolRequest(tool=self.tool, inputs=refs, params=dict(self.params))


# -- helpers ------------------------------------------------------------------------
TRANSFORM = from_origin(400000.0, 4900000.0, 30.0, 30.0)


def write_tif(path: Path, bands: np.ndarray, transform=TRANSFORM, crs=UTM, nodata=None) -> Path:
    data = bands if bands.ndim == 3 else bands[np.newaxis]
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=data.shape[2],
        height=data.shape[1],
        count=data.shape[0],
        dtype=data.dtype,
        crs=crs,
        transform=transform,
        nodata=nodata,
    ) as dst:
        dst.write(data)
    return path


def assert_same_grid(path: Path, crs=UTM, transform=TRANSFORM) -> np.ndarray:
    """The output's first band, after checking it kept the input grid."""
    with rasterio.open(path) as src:
        assert src.driver == "GTiff"
        assert src.crs == crs, f"CRS {src.crs} != {crs}"
        assert src.transform.almost_equals(transform), f"{src.transform} != {transform}"
        return src.read(1)


def _rng() -> np.random.Generator:
    return np.random.default_rng(20240611)


# -- grayscale ---------------------------------------------------------------------
def _rgb_data() -> np.ndarray:
    return _rng().integers(0, 256, size=(3, 128, 128), dtype=np.uint8)


def _rgb(tmp: Path) -> Inputs:
    return {"image": write_tif(tmp / "rgb.tif", _rgb_data())}


def grey_of(rgb: np.ndarray, method: str) -> np.ndarray:
    """The formula the grayscale connector's description states (read from it), rounded
    to nearest as it says."""
    text = GrayscaleConnector.description
    weights = re.search(r"luminosity = ([\d.]+) R \+ ([\d.]+) G \+ ([\d.]+) B", text)
    assert weights is not None and "average (R + G + B) / 3" in text, text
    assert "rounded to the nearest level" in text, text
    r, g, b = (band.astype(np.float64) for band in rgb)
    if method == "luminosity":
        wr, wg, wb = (float(w) for w in weights.groups())
        grey = wr * r + wg * g + wb * b
    else:
        grey = (r + g + b) / 3
    return np.rint(grey).astype(np.uint8)


def _check_grayscale(out: Mapping[str, Path], method: str = "luminosity") -> None:
    grey = assert_same_grid(out["output"])
    assert grey.dtype == np.uint8
    expected = grey_of(_rgb_data(), method)
    differ = int((grey != expected).sum())
    assert differ == 0, f"{differ} of {grey.size} pixels differ from the described formula"


def _check_grayscale_average(out: Mapping[str, Path]) -> None:
    _check_grayscale(out, "average")


# -- histogram equalization ------------------------------------------------------------
def _low_contrast_data() -> np.ndarray:
    return _rng().normal(110, 4, size=(60, 60)).clip(95, 125).astype(np.uint8)


def _low_contrast(tmp: Path) -> Inputs:
    return {"image": write_tif(tmp / "low.tif", _low_contrast_data())}


def _check_equalize(out: Mapping[str, Path]) -> None:
    eq = assert_same_grid(out["output"]).astype(int)
    src = _low_contrast_data().astype(int)
    hist = np.bincount(src.ravel(), minlength=256)
    cdf = np.cumsum(hist)
    cdf_min = cdf[src.min()]
    expected_lut = np.rint((cdf - cdf_min) * 255.0 / (src.size - cdf_min))
    assert np.abs(eq - expected_lut[src]).max() <= 1
    assert src.max() - src.min() < 40 and eq.min() == 0 and eq.max() == 255  # spread
    order = np.argsort(src.ravel(), kind="stable")
    assert np.all(np.diff(eq.ravel()[order]) >= 0)  # monotonic mapping


# -- quantization ------------------------------------------------------------------
LEVELS = 5


def _ramp_data() -> np.ndarray:
    return np.tile(np.linspace(-50.0, 950.0, 80, dtype=np.float32), (30, 1))


def _gradient(tmp: Path) -> Inputs:
    return {"image": write_tif(tmp / "ramp.tif", _ramp_data())}


def _check_quantize(out: Mapping[str, Path]) -> None:
    q = assert_same_grid(out["output"])
    src = _ramp_data().astype(float)
    index = np.minimum(np.floor((src - src.min()) / (src.max() - src.min()) * LEVELS), LEVELS - 1)
    expected = np.rint(index * 255.0 / (LEVELS - 1))
    assert len(np.unique(q)) == LEVELS
    assert set(np.unique(q).tolist()) == {0, 64, 128, 191, 255}
    assert np.array_equal(q, expected)


# -- threshold --------------------------------------------------------------------
def _noise_data() -> np.ndarray:
    return _rng().integers(0, 256, (40, 40), np.uint8)


def _noise(tmp: Path) -> Inputs:
    return {"image": write_tif(tmp / "noise.tif", _noise_data())}


def _check_threshold(out: Mapping[str, Path]) -> None:
    t = assert_same_grid(out["output"])
    src = _noise_data()
    assert set(np.unique(t).tolist()) == {0, 255}
    assert np.array_equal(t, np.where(src > 100, 255, 0))


def _bimodal_data() -> tuple[np.ndarray, np.ndarray]:
    """Two well separated classes of grey values, and which pixel is in the bright one."""
    rng = _rng()
    bright = rng.random((50, 50)) < 0.4
    values = np.where(bright, rng.normal(190, 8, (50, 50)), rng.normal(60, 8, (50, 50)))
    return values.clip(0, 255).astype(np.uint8), bright


def _bimodal(tmp: Path) -> Inputs:
    return {"image": write_tif(tmp / "bimodal.tif", _bimodal_data()[0])}


def _check_otsu(out: Mapping[str, Path]) -> None:
    t = assert_same_grid(out["output"])
    truth = _bimodal_data()[1]
    assert np.array_equal(t == 1, truth)  # max_value=1 in this case


# -- canny ------------------------------------------------------------------------------
def _step(tmp: Path) -> Inputs:
    img = np.full((48, 64), 20, dtype=np.uint8)
    img[:, 32:] = 200
    return {"image": write_tif(tmp / "step.tif", img)}


def _check_canny(out: Mapping[str, Path]) -> None:
    edges = assert_same_grid(out["output"])
    assert set(np.unique(edges).tolist()) <= {0, 255}
    inner = edges[4:-4]  # rows away from the image border
    assert (inner[:, 30:34] == 255).any(axis=1).all(), "edge missing on some rows"
    assert not inner[:, :28].any() and not inner[:, 37:].any(), "edges in flat areas"


# -- hough -----------------------------------------------------------------------------
def _diagonal(tmp: Path) -> Inputs:
    rows, cols = np.mgrid[0:128, 0:128]
    line = (np.abs(rows - cols - 10) <= 1) & (cols >= 10) & (cols <= 110)
    return {"image": write_tif(tmp / "diag.tif", np.where(line, 230, 15).astype(np.uint8))}


def _near_line(x: float, y: float) -> bool:
    return abs(y - x - 10) / math.sqrt(2) <= 3.0


def _check_hough(out: Mapping[str, Path]) -> None:
    drawn = assert_same_grid(out["output"])
    found = json.loads(out["lines"].read_text())
    segments = found["lines"]
    assert found["count"] == len(segments) >= 1
    good = [
        s
        for s in segments
        if _near_line(s["x1"], s["y1"])
        and _near_line(s["x2"], s["y2"])
        and s["length"] >= 60
        and abs(math.degrees(math.atan2(s["y2"] - s["y1"], s["x2"] - s["x1"])) % 180 - 45) <= 3
    ]
    assert good, f"no segment along row = col + 10 in {segments[:5]}"
    assert all(_near_line(s["x1"], s["y1"]) for s in segments), "spurious segment"
    s = good[0]
    x, y = TRANSFORM @ (s["x1"] + 0.5, s["y1"] + 0.5)
    assert np.allclose(s["map"][0], [x, y])
    assert drawn[s["y1"], s["x1"]] == 255 and drawn[s["y2"], s["x2"]] == 255
    rows, cols = np.nonzero(drawn)
    assert all(_near_line(c, r) for r, c in zip(rows, cols, strict=True))


# -- band extraction -------------------------------------------------------------------------
def _bands_data() -> np.ndarray:
    return _rng().integers(-3000, 3000, size=(3, 25, 35), dtype=np.int16)


def _three_bands(tmp: Path) -> Inputs:
    return {"image": write_tif(tmp / "bands.tif", _bands_data())}


def _check_band(out: Mapping[str, Path]) -> None:
    b = assert_same_grid(out["output"])
    data = _bands_data()
    assert b.dtype == np.int16
    assert np.array_equal(b, data[1])


# -- NDVI --------------------------------------------------------------------------------
def _red_nir_data() -> tuple[np.ndarray, np.ndarray]:
    rng = _rng()
    red = rng.integers(0, 4000, (30, 30), dtype=np.uint16)
    nir = rng.integers(0, 6000, (30, 30), dtype=np.uint16)
    red[:3, :3] = 0
    nir[:3, :3] = 0  # sum == 0: nodata
    return red, nir


def _red_nir(tmp: Path) -> Inputs:
    red, nir = _red_nir_data()
    return {"red": write_tif(tmp / "red.tif", red), "nir": write_tif(tmp / "nir.tif", nir)}


def _check_ndvi(out: Mapping[str, Path]) -> None:
    ndvi = assert_same_grid(out["output"])
    with rasterio.open(out["output"]) as src:
        assert src.nodata == NODATA and src.dtypes[0] == "float32"
    red, nir = (a.astype(float) for a in _red_nir_data())
    total = red + nir
    assert np.all(ndvi[total == 0] == NODATA) and (total == 0).sum() >= 9
    ok = total != 0
    assert np.allclose(ndvi[ok], (nir[ok] - red[ok]) / total[ok], atol=1e-6)
    assert ndvi[ok].min() >= -1 and ndvi[ok].max() <= 1


# -- MODIS LST --------------------------------------------------------------------------
def _lst_data() -> np.ndarray:
    dn = _rng().integers(12000, 16500, (20, 20), dtype=np.uint16)
    dn[5, :] = 0  # fill value
    return dn


def _lst(tmp: Path) -> Inputs:
    return {"image": write_tif(tmp / "lst.tif", _lst_data())}


def _check_lst(out: Mapping[str, Path]) -> None:
    c = assert_same_grid(out["output"])
    dn = _lst_data().astype(float)
    assert np.all(c[dn == 0] == NODATA) and (dn == 0).sum() == 20
    assert np.allclose(c[dn != 0], 0.02 * dn[dn != 0] - 273.15, atol=1e-3)
    assert c[dn != 0].min() > -40 and c.max() < 60  # plausible surface temperatures


# -- gdalwarp: reproject, mosaic, clip ----------------------------------------------------------
def _quadrants_data() -> np.ndarray:
    data = np.zeros((60, 60), dtype=np.uint8)
    data[:30, :30], data[:30, 30:], data[30:, :30], data[30:, 30:] = 10, 20, 30, 40
    return data


def _quadrants(tmp: Path) -> Inputs:
    return {"image": write_tif(tmp / "quad.tif", _quadrants_data())}


def _check_reproject(out: Mapping[str, Path]) -> None:
    with rasterio.open(out["output"]) as dst:
        assert dst.crs == CRS.from_epsg(4326)
        # the centre of each source quadrant, in lon/lat, must hold that quadrant's value
        for (col, row), value in {(15, 15): 10, (45, 15): 20, (15, 45): 30, (45, 45): 40}.items():
            x, y = TRANSFORM @ (col + 0.5, row + 0.5)
            lon, lat = warp_points(UTM, dst.crs, [x], [y])
            r, c = dst.index(lon[0], lat[0])
            assert dst.read(1)[r, c] == value
        rows, cols = _quadrants_data().shape
        left, top = TRANSFORM @ (0, 0)
        right, bottom = TRANSFORM @ (cols, rows)
        expected = transform_bounds(UTM, dst.crs, left, bottom, right, top)
        px = abs(dst.res[0])
        offsets = [(got - want) / px for got, want in zip(dst.bounds, expected, strict=True)]
        assert abs(offsets[0]) <= 0.5 and abs(offsets[3]) <= 0.5, offsets  # left, top anchored
        assert -0.5 <= offsets[2] <= 1.0 and -1.0 <= offsets[1] <= 0.5, offsets  # whole pixels
        # every pixel against an independent nearest-neighbour warp onto the same grid
        want = np.zeros(dst.shape, dtype=np.uint8)
        reproject(
            _quadrants_data(),
            want,
            src_transform=TRANSFORM,
            src_crs=UTM,
            dst_transform=dst.transform,
            dst_crs=dst.crs,
            resampling=Resampling.nearest,
        )
        assert (dst.read(1) == want).mean() >= 0.995


def _tiles(tmp: Path) -> Inputs:
    left = write_tif(tmp / "left.tif", np.full((20, 30), 11, np.uint8))
    right_t = from_origin(400000.0 + 30 * 30, 4900000.0, 30.0, 30.0)
    right = write_tif(tmp / "right.tif", np.full((20, 30), 22, np.uint8), transform=right_t)
    return {"inputs": [left, right]}


def _check_mosaic(out: Mapping[str, Path]) -> None:
    m = assert_same_grid(out["output"])
    assert m.shape == (20, 60)
    assert np.all(m[:, :30] == 11) and np.all(m[:, 30:] == 22)


CLIP_BOX = (400300.0, 4899100.0, 401200.0, 4899700.0)  # cols 10..40, rows 10..30


def _check_clip(out: Mapping[str, Path]) -> None:
    clip_t = from_origin(CLIP_BOX[0], CLIP_BOX[3], 30.0, 30.0)
    c = assert_same_grid(out["output"], transform=clip_t)
    src = _quadrants_data()
    assert c.shape == (20, 30)
    assert np.array_equal(c, src[10:30, 10:40])


# -- the cases (inputs are deterministic: checks recompute them, never read them back) ------
CASES: list[ConnectorCase] = [
    ConnectorCase("grayscale", "grayscale", _rgb, _check_grayscale),
    ConnectorCase(
        "grayscale_average", "grayscale", _rgb, _check_grayscale_average, {"method": "average"}
    ),
    ConnectorCase("equalize", "equalize", _low_contrast, _check_equalize),
    ConnectorCase("quantize", "quantize", _gradient, _check_quantize, {"levels": LEVELS}),
    ConnectorCase("threshold", "threshold", _noise, _check_threshold, {"value": 100}),
    ConnectorCase(
        "threshold_otsu", "threshold", _bimodal, _check_otsu, {"method": "otsu", "max_value": 1}
    ),
    ConnectorCase(
        "canny", "canny", _step, _check_canny, {"canny1": 50, "canny2": 150, "aperture_size": 3}
    ),
    ConnectorCase(
        "hough",
        "hough",
        _diagonal,
        _check_hough,
        {"canny1": 50, "canny2": 150, "threshold": 40, "min_line_length": 40, "max_line_gap": 5},
    ),
    ConnectorCase("band", "band", _three_bands, _check_band, {"band": 2}),
    ConnectorCase("ndvi", "ndvi", _red_nir, _check_ndvi),
    ConnectorCase("modis_lst", "modis_lst", _lst, _check_lst),
    ConnectorCase(
        "reproject", "reproject", _quadrants, _check_reproject, {"epsg": 4326, "resampling": "near"}
    ),
    ConnectorCase("mosaic", "mosaic", _tiles, _check_mosaic, {"epsg": 32635, "resolution": 30}),
    ConnectorCase(
        "clip", "clip", _quadrants, _check_clip, {"bbox": ",".join(str(v) for v in CLIP_BOX)}
    ),
]

"""Connector validation, planning, registry and describe() output."""

from __future__ import annotations

import json
import os
from typing import Any

import pytest

from gproc.connectors import (
    Connector,
    InvalidRequest,
    JobPlan,
    ToolRequest,
    UnknownTool,
    get_connector,
    list_connectors,
)
from gproc.connectors.base import EOTOOL

EXPECTED_TOOLS = {
    "grayscale",
    "equalize",
    "quantize",
    "threshold",
    "canny",
    "hough",
    "band",
    "ndvi",
    "reproject",
    "mosaic",
    "clip",
    "modis_lst",
}


def one_input(tool: str) -> dict[str, Any]:
    """A minimal valid ``inputs`` mapping for ``tool``."""
    conn = get_connector(tool)
    return {
        p.name: [f"src{i}" for i in range(p.min_count)] if p.multiple else f"src-{p.name}"
        for p in conn.inputs
    }


REQUIRED_PARAMS: dict[str, dict[str, Any]] = {"clip": {"bbox": "0,0,1,1"}}


def plan(tool: str, params: dict[str, Any] | None = None, **kw: Any) -> JobPlan:
    inputs = kw.pop("inputs", one_input(tool))
    raw = REQUIRED_PARAMS.get(tool, {}) if params is None else params
    return get_connector(tool).plan(ToolRequest(tool, inputs, raw, **kw))


# -- registry -----------------------------------------------------------------------
def test_registry_lists_every_tool_once() -> None:
    names = [c.name for c in list_connectors()]
    assert set(names) == EXPECTED_TOOLS and len(names) == len(EXPECTED_TOOLS)
    assert all(isinstance(c, Connector) for c in list_connectors())


def test_unknown_tool() -> None:
    with pytest.raises(UnknownTool) as err:
        get_connector("rm -rf")
    assert err.value.name == "rm -rf"


def test_plan_refuses_request_for_another_tool() -> None:
    with pytest.raises(InvalidRequest) as err:
        get_connector("canny").plan(ToolRequest("ndvi", {"image": "x"}))
    assert err.value.field == "tool"


# -- good requests (table) -----------------------------------------------------------------
GOOD: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    # tool, raw params, expected typed values (subset)
    ("canny", {}, {"canny1": 100.0, "canny2": 200.0, "aperture_size": 3, "l2gradient": False}),
    (
        "canny",
        {"canny1": "50", "canny2": 120, "aperture_size": "7"},
        {"canny1": 50.0, "canny2": 120.0, "aperture_size": 7},
    ),
    ("canny", {"l2gradient": "yes"}, {"l2gradient": True}),
    ("hough", {"threshold": "30", "theta": 0.5}, {"threshold": 30, "theta": 0.5}),
    ("quantize", {"levels": 2}, {"levels": 2}),
    ("quantize", {"levels": "256"}, {"levels": 256}),
    ("threshold", {"value": "-12.5e1", "method": "otsu"}, {"value": -125.0, "method": "otsu"}),
    (
        "grayscale",
        {"method": "average", "red_band": 3, "blue_band": 1},
        {"method": "average", "red_band": 3, "blue_band": 1},
    ),
    ("band", {"band": 4.0}, {"band": 4}),
    ("ndvi", {"red_band": 3, "nir_band": 4}, {"red_band": 3, "nir_band": 4}),
    ("modis_lst", {}, {"scale_factor": 0.02, "band": 1}),
    (
        "reproject",
        {"epsg": "32635", "bbox": "20, 43.5, 30, 48.5", "resampling": "bilinear"},
        {"epsg": 32635, "bbox": (20.0, 43.5, 30.0, 48.5), "resampling": "bilinear"},
    ),
    ("reproject", {"bbox": [1, 2, 3, 4]}, {"epsg": 4326, "bbox": (1.0, 2.0, 3.0, 4.0)}),
    ("mosaic", {"resolution": 30}, {"epsg": 4326, "resolution": 30.0}),
    ("clip", {"bbox": "0,0,10,10"}, {"bbox": (0.0, 0.0, 10.0, 10.0)}),
]


@pytest.mark.parametrize(("tool", "raw", "expected"), GOOD)
def test_good_params_are_typed(tool: str, raw: dict[str, Any], expected: dict[str, Any]) -> None:
    values = plan(tool, raw).params
    for name, value in expected.items():
        assert values[name] == value
        assert type(values[name]) is type(value)


def test_omitted_optional_param_without_default_is_absent() -> None:
    p = plan("clip", {"bbox": "0,0,1,1"})
    assert "epsg" not in p.params and not any(a.startswith("--epsg") for a in p.arguments)
    assert "resolution" not in plan("reproject").params


# -- bad requests (table) ----------------------------------------------------------------
BAD: list[tuple[str, dict[str, Any], str, str]] = [
    # tool, raw params, field, words in the message
    ("canny", {"aperture_size": 4}, "params.aperture_size", "not one of 3, 5, 7"),
    ("canny", {"aperture_size": "3.0"}, "params.aperture_size", "expected an integer"),
    ("canny", {"canny1": -1}, "params.canny1", "below the minimum"),
    ("canny", {"canny2": 1e9}, "params.canny2", "above the maximum"),
    ("canny", {"canny1": "abc"}, "params.canny1", "expected a number"),
    ("canny", {"canny1": "nan"}, "params.canny1", "expected a number"),
    ("canny", {"canny1": float("inf")}, "params.canny1", "finite"),
    ("canny", {"canny1": True}, "params.canny1", "boolean"),
    ("canny", {"l2gradient": "maybe"}, "params.l2gradient", "true or false"),
    ("canny", {"l2gradient": 2}, "params.l2gradient", "true or false"),
    ("canny", {"sigma": 1}, "params.sigma", "unknown parameter"),
    ("quantize", {"levels": 1}, "params.levels", "below the minimum"),
    ("quantize", {"levels": 257}, "params.levels", "above the maximum"),
    ("quantize", {"levels": 2.5}, "params.levels", "expected an integer"),
    ("quantize", {"levels": True}, "params.levels", "boolean"),
    ("quantize", {"levels": "9" * 13}, "params.levels", "expected an integer"),
    ("threshold", {"method": "OTSU"}, "params.method", "not one of binary, otsu"),
    ("threshold", {"max_value": 0}, "params.max_value", "below the minimum"),
    ("band", {"band": 0}, "params.band", "below the minimum"),
    ("reproject", {"epsg": 12}, "params.epsg", "below the minimum"),
    ("reproject", {"epsg": "EPSG:4326"}, "params.epsg", "expected an integer"),
    ("reproject", {"bbox": "1,2,3"}, "params.bbox", "4 numbers"),
    ("reproject", {"bbox": "3,2,1,4"}, "params.bbox", "xmin < xmax"),
    ("reproject", {"bbox": 5}, "params.bbox", "xmin,ymin,xmax,ymax"),
    ("reproject", {"resampling": "nearest"}, "params.resampling", "not one of near"),
    ("mosaic", {"resolution": 0}, "params.resolution", "below the minimum"),
    ("clip", {}, "params.bbox", "required parameter is missing"),
    ("modis_lst", {"scale_factor": 2}, "params.scale_factor", "above the maximum"),
    ("modis_lst", {"scale_factor": "x" * 100}, "params.scale_factor", "longer than 64"),
]


@pytest.mark.parametrize(("tool", "raw", "field", "words"), BAD)
def test_bad_params_name_the_field(tool: str, raw: dict[str, Any], field: str, words: str) -> None:
    with pytest.raises(InvalidRequest) as err:
        plan(tool, raw)
    assert err.value.field == field
    assert words in err.value.message
    assert str(err.value).startswith(f"{field}: ")


@pytest.mark.parametrize(
    ("tool", "inputs", "field", "words"),
    [
        ("canny", {}, "inputs.image", "missing"),
        ("canny", {"image": "a", "mask": "b"}, "inputs.mask", "unknown input port"),
        ("canny", {"image": ["a"]}, "inputs.image", "one source"),
        ("canny", {"image": ""}, "inputs.image", "1-4096"),
        ("canny", {"image": "a\nb"}, "inputs.image", "control characters"),
        ("ndvi", {"red": "a"}, "inputs.nir", "missing"),
        ("mosaic", {"inputs": "a"}, "inputs.inputs", "list of sources"),
        ("mosaic", {"inputs": ["a"]}, "inputs.inputs", "2 to 64 sources, got 1"),
        ("mosaic", {"inputs": [f"s{i}" for i in range(65)]}, "inputs.inputs", "got 65"),
        ("mosaic", {"inputs": ["a", 3]}, "inputs.inputs", "string"),
    ],
)
def test_bad_inputs_name_the_port(
    tool: str, inputs: dict[str, Any], field: str, words: str
) -> None:
    with pytest.raises(InvalidRequest) as err:
        plan(tool, inputs=inputs)
    assert err.value.field == field and words in err.value.message


def test_bad_output_port_and_label() -> None:
    with pytest.raises(InvalidRequest) as err:
        plan("canny", outputs={"edges": "x"})
    assert err.value.field == "outputs.edges"
    with pytest.raises(InvalidRequest) as err:
        plan("canny", outputs={"output": "a b"})
    assert err.value.field == "outputs.output"
    assert plan("hough", outputs={"lines": "outIMG_2"}).output_labels == {"lines": "outIMG_2"}


# -- plans --------------------------------------------------------------------------------
def test_canny_plan() -> None:
    p = plan("canny", {"canny2": "120", "aperture_size": 5}, inputs={"image": "gsiftp://x/a.tif"})
    assert p.executable == EOTOOL and p.executable.is_file()
    assert os.access(p.executable, os.X_OK)
    assert p.executable.read_text().startswith("#!/usr/bin/env python3\n")
    assert p.arguments == (
        "canny",
        "--canny1=100.0",
        "--canny2=120.0",
        "--aperture_size=5",
        "--l2gradient=0",
        "--band=1",
        "--in-image=in_image.tif",
        "--out-output=out.tif",
    )
    assert p.inputs == {"image": "in_image.tif"} and p.outputs == {"output": "out.tif"}
    assert p.staging == (("gsiftp://x/a.tif", "in_image.tif"),)


def test_mosaic_plan_numbers_the_sources_in_order() -> None:
    p = plan("mosaic", inputs={"inputs": ["c", "a", "b"]})
    names = ("in_inputs_1.tif", "in_inputs_2.tif", "in_inputs_3.tif")
    assert p.inputs == {"inputs": names}
    assert p.staging == tuple(zip(("c", "a", "b"), names, strict=True))
    assert [a for a in p.arguments if a.startswith("--in-")] == [f"--in-inputs={n}" for n in names]


def test_ndvi_and_hough_file_names() -> None:
    assert plan("ndvi").inputs == {"red": "in_red.tif", "nir": "in_nir.tif"}
    assert plan("hough").outputs == {"output": "out.tif", "lines": "lines.json"}


@pytest.mark.parametrize("conn", list_connectors(), ids=lambda c: c.name)
def test_resources_are_sensible(conn: Connector) -> None:
    p = plan(conn.name)
    assert 1 <= p.request_cpus <= 4
    assert 256 <= p.request_memory_mb <= 8192
    assert 512 <= p.request_disk_mb <= 16384


# -- describe ---------------------------------------------------------------------------------
@pytest.mark.parametrize("conn", list_connectors(), ids=lambda c: c.name)
def test_describe_is_json_and_complete(conn: Connector) -> None:
    d = json.loads(json.dumps(conn.describe()))
    assert d["name"] == conn.name and d["description"]
    assert [i["name"] for i in d["inputs"]] == [p.name for p in conn.inputs]
    assert [o["name"] for o in d["outputs"]] == [p.name for p in conn.outputs]
    assert [p["name"] for p in d["params"]] == [p.name for p in conn.params]
    for p in d["params"]:
        assert p["type"] in {"int", "float", "choice", "bool", "bbox"} and p["description"]
        if p["type"] in {"int", "float"}:
            assert "min" in p and "max" in p
        if p["type"] == "choice":
            assert p["default"] in p["choices"]
    for param in conn.params:  # every default passes its own validation
        if param.default is not None:
            assert param.convert("x", param.default) == param.default


def test_describe_canny_params() -> None:
    params = {p["name"]: p for p in get_connector("canny").describe()["params"]}
    assert params["aperture_size"] == {
        "name": "aperture_size",
        "type": "int",
        "description": "Sobel aperture size",
        "default": 3,
        "required": False,
        "min": None,
        "max": None,
        "choices": [3, 5, 7],
    }
    assert params["canny1"]["type"] == "float" and params["canny1"]["min"] == 0
    mosaic = get_connector("mosaic").describe()["inputs"][0]
    assert mosaic["multiple"] is True and mosaic["min_count"] == 2 and mosaic["max_count"] == 64

"""GiSHEO processing prototypes and argument lists -> ToolRequest."""

from __future__ import annotations

import pytest

from gproc.connectors import (
    InvalidRequest,
    ToolRequest,
    UnknownTool,
    get_connector,
    list_connectors,
)
from gproc.connectors.gisheo import MAX_PROCESSING_LEN, TOOL_NAMES, parse, prototype

CANNY = "outIMG_1 canny(inIMG_1#canny1#aperture_size#canny2)"


def test_issue_example() -> None:
    req = parse(CANNY, "<canny2=120>#<aperture_size=3>", {"inIMG_1": "/data/scene.tif"})
    assert req == ToolRequest(
        tool="canny",
        inputs={"image": "/data/scene.tif"},
        params={"canny2": "120", "aperture_size": "3"},
        outputs={"output": "outIMG_1"},
    )
    # canny1 is named but not given: its default applies when planned
    values = get_connector("canny").plan(req).params
    assert values["canny1"] == 100.0 and values["canny2"] == 120.0
    assert values["aperture_size"] == 3


@pytest.mark.parametrize(
    ("processing", "args", "inputs", "tool", "params", "ports"),
    [
        ("outIMG_1 canny(inIMG_1)", "", {"inIMG_1": "a"}, "canny", {}, {"image": "a"}),
        (
            "  outIMG_1   CANNY ( inIMG_1 # threshold1 # threshold2 )  ",
            " <threshold1=10> # <threshold2=20> ",
            {"inIMG_1": "a"},
            "canny",
            {"canny1": "10", "canny2": "20"},
            {"image": "a"},
        ),
        (
            "outIMG_1 ndvi(inIMG_2#inIMG_1)",
            "",
            {"inIMG_1": "n", "inIMG_2": "r"},
            "ndvi",
            {},
            {"red": "r", "nir": "n"},
        ),
        (
            "outIMG_1 histeq(inIMG_1#band)",
            "<band=2>",
            {"inIMG_1": "a"},
            "equalize",
            {"band": "2"},
            {"image": "a"},
        ),
        (
            "outIMG_1 mosaic(inIMG_1#inIMG_2#inIMG_3#srs#bbox)",
            "<srs=32635>#<bbox=1,2,3.5,4>",
            {"inIMG_1": "a", "inIMG_2": "b", "inIMG_3": "c"},
            "mosaic",
            {"epsg": "32635", "bbox": "1,2,3.5,4"},
            {"inputs": ["a", "b", "c"]},
        ),
        (
            "outIMG_1 lst(inIMG_1#scale)",
            "<scale=0.02>",
            {"inIMG_1": "a"},
            "modis_lst",
            {"scale_factor": "0.02"},
            {"image": "a"},
        ),
        (
            "outIMG_1 threshold(inIMG_1#thresh#method)",
            "<thresh=-3.5>#<method=otsu>",
            {"inIMG_1": "a"},
            "threshold",
            {"value": "-3.5", "method": "otsu"},
            {"image": "a"},
        ),
    ],
)
def test_good_prototypes(
    processing: str,
    args: str,
    inputs: dict[str, str],
    tool: str,
    params: dict[str, str],
    ports: dict[str, object],
) -> None:
    req = parse(processing, args, inputs)
    assert req.tool == tool and dict(req.params) == params and dict(req.inputs) == ports


def test_two_outputs_label_both_ports() -> None:
    req = parse("outIMG_1,outIMG_2 hough(inIMG_1#threshold)", "<threshold=30>", {"inIMG_1": "a"})
    assert req.outputs == {"output": "outIMG_1", "lines": "outIMG_2"}


@pytest.mark.parametrize("conn", list_connectors(), ids=lambda c: c.name)
def test_prototype_of_each_connector_parses_back(conn) -> None:  # type: ignore[no-untyped-def]
    text = prototype(conn)
    n_in = text.count("inIMG_")
    inputs = {f"inIMG_{i}": f"src{i}" for i in range(1, n_in + 1)}
    args = "<bbox=0,0,1,1>" if conn.name == "clip" else ""
    req = parse(text, args, inputs)
    assert req.tool == conn.name
    assert set(req.outputs) == {p.name for p in conn.outputs}


def test_every_mapped_name_is_a_connector() -> None:
    names = {c.name for c in list_connectors()}
    assert set(TOOL_NAMES.values()) == names


@pytest.mark.parametrize(
    ("processing", "args", "inputs", "field", "words"),
    [
        ("canny(inIMG_1)", "", {"inIMG_1": "a"}, "processing", "expected 'outIMG_1 tool("),
        ("outIMG_1 canny inIMG_1", "", {"inIMG_1": "a"}, "processing", "expected"),
        ("outIMG_1 canny(inIMG_1))", "", {"inIMG_1": "a"}, "processing", "expected"),
        ("outIMG_1 canny(inIMG_1##canny1)", "", {"inIMG_1": "a"}, "processing", "bad argument"),
        (
            "outIMG_1 canny(inIMG_1#sigma)",
            "",
            {"inIMG_1": "a"},
            "processing",
            "unknown parameter 'sigma'",
        ),
        ("outIMG_1 canny(inIMG_1#canny1#canny1)", "", {"inIMG_1": "a"}, "processing", "repeated"),
        (
            "outIMG_1 canny(inIMG_1#canny1#threshold1)",
            "",
            {"inIMG_1": "a"},
            "processing",
            "repeated",
        ),
        ("outIMG_1 canny(inIMG_1#inIMG_1)", "", {"inIMG_1": "a"}, "processing", "repeated"),
        (
            "outIMG_1 canny(inIMG_1#inIMG_2)",
            "",
            {"inIMG_1": "a", "inIMG_2": "b"},
            "processing",
            "takes 1 input",
        ),
        ("outIMG_1,outIMG_1 hough(inIMG_1)", "", {"inIMG_1": "a"}, "processing", "repeated"),
        ("outIMG_1,outIMG_2 canny(inIMG_1)", "", {"inIMG_1": "a"}, "processing", "1 output(s)"),
        ("outIMG_1 canny(inIMG_1)", "", {}, "inputs.inIMG_1", "no source"),
        (
            "outIMG_1 canny(inIMG_1)",
            "",
            {"inIMG_1": "a", "inIMG_2": "b"},
            "inputs.inIMG_2",
            "not named",
        ),
        (
            "outIMG_1 canny(inIMG_1#canny2)",
            "<canny1=3>",
            {"inIMG_1": "a"},
            "argument-list",
            "not a parameter named in the prototype",
        ),
        (
            "outIMG_1 canny(inIMG_1#canny2)",
            "<canny2=3>#<canny2=4>",
            {"inIMG_1": "a"},
            "argument-list",
            "given twice",
        ),
        (
            "outIMG_1 canny(inIMG_1#canny2)",
            "canny2=3",
            {"inIMG_1": "a"},
            "argument-list",
            "expected '<name=value>'",
        ),
        (
            "outIMG_1 canny(inIMG_1#canny2)",
            "<canny2=3>#",
            {"inIMG_1": "a"},
            "argument-list",
            "expected '<name=value>'",
        ),
        (
            "outIMG_1 canny(inIMG_1#canny2)",
            "<canny2=>",
            {"inIMG_1": "a"},
            "argument-list",
            "expected",
        ),
        (
            "outIMG_1 canny(inIMG_1#canny2)",
            "<canny2=1 2>",
            {"inIMG_1": "a"},
            "argument-list",
            "expected",
        ),
        (
            "outIMG_1 canny(inIMG_1#aperture_size)",
            "<aperture_size=4>",
            {"inIMG_1": "a"},
            "params.aperture_size",
            "not one of 3, 5, 7",
        ),
        (
            "outIMG_1 canny(inIMG_1#canny2)",
            "<canny2=abc>",
            {"inIMG_1": "a"},
            "params.canny2",
            "expected a number",
        ),
        ("outIMG_1 mosaic(inIMG_1)", "", {"inIMG_1": "a"}, "inputs.inputs", "2 to 64"),
        ("outIMG_1 clip(inIMG_1)", "", {"inIMG_1": "a"}, "params.bbox", "missing"),
        ("outIMG_1 canny(inIMG_1)", "", {"inIMG_1": ""}, "inputs.image", "1-4096"),
        ("o" * (MAX_PROCESSING_LEN + 1), "", {}, "processing", "longer than"),
        (
            "outIMG_1 canny(inIMG_1)",
            "<a=1>#" * 400,
            {"inIMG_1": "a"},
            "argument-list",
            "longer than",
        ),
        ("outIMG_1 canny(inIMG_1)\u00e9", "", {"inIMG_1": "a"}, "processing", "printable ASCII"),
    ],
)
def test_bad_notation(
    processing: str, args: str, inputs: dict[str, str], field: str, words: str
) -> None:
    with pytest.raises(InvalidRequest) as err:
        parse(processing, args, inputs)
    assert err.value.field == field
    assert words in err.value.message


def test_unknown_gisheo_tool() -> None:
    with pytest.raises(UnknownTool):
        parse("outIMG_1 sobel(inIMG_1)", "", {"inIMG_1": "a"})


def test_non_string_arguments_are_refused() -> None:
    with pytest.raises(InvalidRequest) as err:
        parse(42, "", {})  # type: ignore[arg-type]
    assert err.value.field == "processing"
    with pytest.raises(InvalidRequest) as err:
        parse("outIMG_1 canny(inIMG_1)", ["<a=1>"], {"inIMG_1": "a"})  # type: ignore[arg-type]
    assert err.value.field == "argument-list"

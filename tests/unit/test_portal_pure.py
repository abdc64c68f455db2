"""The portal's pure parts: forms from tool descriptions and their validation, the
workflow documents it writes (checked by gproc's own parsers and compiler), search
queries and input references."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from gproc.catalogue.gql import parse_gql
from gproc.connectors import get_connector
from gproc.errors import InvalidRequest
from gproc.services.portal.forms import check_params, parse_bbox, tool_form
from gproc.services.portal.views_data import search_query
from gproc.services.portal.views_tasks import input_reference
from gproc.services.portal.views_workflows import datasets_of, parse_params
from gproc.services.portal.workflows import CHAIN_INPUT, Step, chain, figure7
from gproc.services.soap.convert import tool_info
from gproc.workflows import silk, structured
from gproc.workflows.compile import compile_workflow

EXAMPLE = Path(__file__).parents[2] / "examples" / "workflows" / "figure7.silk"


def _form(tool: str):  # the same description DescribeTool sends, as zeep reads it
    info = tool_info(get_connector(tool))
    return tool_form(
        SimpleNamespace(**{k: getattr(info, k) for k in info.get_flat_type_info(type(info))})
    )


def test_form_fields_follow_the_description() -> None:
    form = _form("canny")
    by = {p.name: p for p in form.params}
    assert [p.name for p in form.inputs] == ["image"]
    assert by["aperture_size"].widget == "select" and by["aperture_size"].choices == ("3", "5", "7")
    assert by["canny1"].widget == "number" and (by["canny1"].minimum, by["canny1"].maximum) == (
        0,
        10000,
    )
    assert by["canny1"].default == "100.0" and by["l2gradient"].widget == "checkbox"
    assert by["band"].step == "1" and by["canny1"].step == "any"


@pytest.mark.parametrize(
    ("tool", "given", "errors", "values"),
    [
        ("canny", {}, {}, {}),
        (
            "canny",
            {"canny1": "50", "aperture_size": "5"},
            {},
            {"canny1": "50", "aperture_size": "5"},
        ),
        ("canny", {"canny1": "10001"}, {"canny1": "canny1: must be at most 10000"}, {}),
        ("canny", {"canny1": "-0.5"}, {"canny1": "canny1: must be at least 0"}, {}),
        ("canny", {"canny1": "nan"}, {"canny1": "canny1: must be a finite number"}, {}),
        ("canny", {"band": "1.5"}, {"band": "band: must be a whole number"}, {}),
        (
            "canny",
            {"aperture_size": "4"},
            {"aperture_size": "aperture_size: must be one of 3, 5, 7"},
            {},
        ),
        ("canny", {"l2gradient": "on"}, {}, {"l2gradient": "true"}),
        ("canny", {"l2gradient": "maybe"}, {"l2gradient": "l2gradient: must be true or false"}, {}),
        ("canny", {"nope": "1"}, {"nope": "nope: not a parameter of canny"}, {}),
        ("clip", {}, {"bbox": "bbox: required"}, {}),
        ("clip", {"bbox": "1,2,3"}, {"bbox": "bbox: must be four numbers xmin,ymin,xmax,ymax"}, {}),
        (
            "clip",
            {"bbox": "3,2,1,4"},
            {"bbox": "bbox: xmin must be below xmax and ymin below ymax"},
            {},
        ),
        ("clip", {"bbox": "1,2,3,4"}, {}, {"bbox": "1,2,3,4"}),
        (
            "reproject",
            {"resampling": "bogus"},
            {
                "resampling": "resampling: must be one of near, bilinear, cubic, cubicspline, "
                "lanczos, average, mode"
            },
            {},
        ),
    ],
)
def test_check_params(tool: str, given: dict, errors: dict, values: dict) -> None:
    checked = check_params(_form(tool), given)
    assert checked.errors == errors
    if not errors:
        assert checked.values == values


def test_form_checks_agree_with_the_connector() -> None:
    """What the form accepts, the connector accepts; what it refuses, the connector refuses."""
    connector = get_connector("canny")
    form = _form("canny")
    for given in (
        {"canny1": "50"},
        {"aperture_size": "7"},
        {"canny1": "20000"},
        {"aperture_size": "4"},
    ):
        checked = check_params(form, given)
        try:
            connector.validate_params(given)
            accepted = True
        except InvalidRequest:
            accepted = False
        assert checked.ok == accepted, given


def test_figure7_preset_is_the_example() -> None:
    assert figure7(1) == EXAMPLE.read_text()
    doc = silk.parse(figure7(3))
    compiled = compile_workflow(doc, max_nodes=100, sources={"A0": ["a", "b", "c"]})
    assert compiled.tools == {"grayscale", "canny", "hough"}
    assert len(compiled.jobs) == 9  # three branches of three operations
    with pytest.raises(InvalidRequest):
        figure7(0)


def test_chain_builder_fans_out_over_the_images() -> None:
    steps = [Step("grayscale", "image", {}), Step("canny", "image", {"canny2": "120"})]
    doc = structured.parse(chain(steps, 4))
    compiled = compile_workflow(doc, max_nodes=100, sources={CHAIN_INPUT: ["w", "x", "y", "z"]})
    assert len(compiled.jobs) == 8
    assert compiled.tools == {"grayscale", "canny"}
    with pytest.raises(InvalidRequest, match="at least one image"):
        chain(steps, 0)
    with pytest.raises(InvalidRequest, match="at least one operation"):
        chain([], 2)


@pytest.mark.parametrize(
    ("gql", "bbox", "query"),
    [
        ("", "", ""),
        ("type:DEM", "", "(type:DEM)"),
        ("a OR b", "21,45,22,46", "(a OR b) bbox:21.000000,45.000000,22.000000,46.000000"),
        ("", "21.1,45.2,21.3,45.4", "bbox:21.100000,45.200000,21.300000,45.400000"),
    ],
)
def test_search_query(gql: str, bbox: str, query: str) -> None:
    assert search_query(gql, bbox) == query
    parse_gql(query)  # the catalogue's grammar takes it


@pytest.mark.parametrize("bbox", ["1,2,3", "3,2,1,4", "0,0,200,1", "a,b,c,d", "nan,0,1,1"])
def test_bad_boxes(bbox: str) -> None:
    assert parse_bbox(bbox) is None
    with pytest.raises(InvalidRequest, match="box"):
        search_query("", bbox)


@pytest.mark.parametrize(
    ("raw", "ref"),
    [
        ("dataset:eo/roads", "dataset:eo/roads"),
        ("/private/alice-1/x.tif", "gateway:///private/alice-1/x.tif"),
        ("gateway:///public/a.tif", "gateway:///public/a.tif"),
        (" /public/a.tif ", "gateway:///public/a.tif"),
    ],
)
def test_input_reference(raw: str, ref: str) -> None:
    assert input_reference(raw) == ref


@pytest.mark.parametrize(
    "raw", ["/etc/../passwd", "file:///etc/passwd", "relative.tif", "dataset:", ""]
)
def test_input_reference_refusals(raw: str) -> None:
    with pytest.raises(InvalidRequest):
        input_reference(raw)


def test_form_helpers() -> None:
    assert datasets_of("eo/a\neo/b, eo/c\n") == ["eo/a", "eo/b", "eo/c"]
    with pytest.raises(InvalidRequest):
        datasets_of("<script>")
    assert parse_params("canny1=50, canny2 = 120") == {"canny1": "50", "canny2": "120"}
    with pytest.raises(InvalidRequest, match="name=value"):
        parse_params("canny1")

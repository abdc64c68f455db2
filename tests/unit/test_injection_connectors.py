"""Hostile strings in every string-ish field of a request never reach a job's arguments.

Each hostile value must be refused (InvalidRequest / UnknownTool) or rendered
harmless by typed conversion; a plan's arguments and sandbox file names stay within
small alphabets whatever the request held.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from gproc.connectors import (
    InvalidRequest,
    ToolRequest,
    UnknownTool,
    get_connector,
    list_connectors,
)
from gproc.connectors.base import JobPlan
from gproc.connectors.gisheo import parse

HOSTILE = [
    '1\nGprocTaskId="x"',
    '"; Owner="root',
    "\nqueue 100",
    "+Attr=1",
    "3\n+Owner=root",
    "; rm -rf /",
    "$(id)",
    "`id`",
    "1 && id",
    "1|id",
    "../../etc/passwd",
    "/etc/passwd",
    "a\x00b",
    "5\x00",
    "3 ",  # harmless once typed, refused elsewhere
    "--out-output=/etc/passwd",
    "x" * 10_000,
    "\u202e3",
]
SAFE_ARG = re.compile(r"^[A-Za-z0-9_.,=+-]+$")
SAFE_FILE = re.compile(r"^[a-z][a-z0-9_]*\.(tif|json)$")
CONNECTORS = list_connectors()


def base_inputs(tool: str) -> dict[str, Any]:
    conn = get_connector(tool)
    return {
        p.name: [f"s{i}" for i in range(p.min_count)] if p.multiple else "src" for p in conn.inputs
    }


def base_params(tool: str) -> dict[str, Any]:
    return {"bbox": "0,0,1,1"} if tool == "clip" else {}


def assert_plan_safe(plan: JobPlan) -> None:
    for arg in plan.arguments:
        assert SAFE_ARG.match(arg), arg
        assert len(arg) <= 128
    files = [*plan.outputs.values()]
    for names in plan.inputs.values():
        files += [names] if isinstance(names, str) else list(names)
    for name in files:
        assert SAFE_FILE.match(name), name
    # option names come from the connector only; values are numbers, choices or flags
    declared = {p.name for p in get_connector(plan.tool).params}
    for arg in plan.arguments[1:]:
        key = arg.split("=", 1)[0].removeprefix("--")
        assert key in declared or key.startswith(("in-", "out-")), arg


@pytest.mark.parametrize("conn", CONNECTORS, ids=lambda c: c.name)
@pytest.mark.parametrize("value", HOSTILE, ids=range(len(HOSTILE)))
def test_hostile_param_values(conn, value: str) -> None:  # type: ignore[no-untyped-def]
    for param in conn.params:
        params = base_params(conn.name) | {param.name: value}
        try:
            plan = conn.plan(ToolRequest(conn.name, base_inputs(conn.name), params))
        except InvalidRequest as err:
            assert err.field == f"params.{param.name}"
            continue
        assert_plan_safe(plan)
        typed = plan.params[param.name]
        assert not isinstance(typed, str) or typed in getattr(param, "choices", ())


@pytest.mark.parametrize("conn", CONNECTORS, ids=lambda c: c.name)
@pytest.mark.parametrize("name", HOSTILE + ["canny1 ", "Band", "in-image", "out-output"])
def test_hostile_param_names(conn, name: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InvalidRequest) as err:
        params = base_params(conn.name) | {name: 1}
        conn.plan(ToolRequest(conn.name, base_inputs(conn.name), params))
    assert err.value.field in ("params", f"params.{name}")
    assert "\n" not in err.value.field and "\n" not in str(err.value)


@pytest.mark.parametrize("conn", CONNECTORS, ids=lambda c: c.name)
@pytest.mark.parametrize("port", HOSTILE)
def test_hostile_port_names(conn, port: str) -> None:  # type: ignore[no-untyped-def]
    inputs = base_inputs(conn.name) | {port: "src"}
    with pytest.raises(InvalidRequest) as err:
        conn.plan(ToolRequest(conn.name, inputs, base_params(conn.name)))
    assert err.value.field == "inputs"
    with pytest.raises(InvalidRequest) as err:
        conn.plan(
            ToolRequest(
                conn.name, base_inputs(conn.name), base_params(conn.name), outputs={port: "label"}
            )
        )
    assert err.value.field == "outputs"


@pytest.mark.parametrize("label", [*HOSTILE, "..", "a..b", ".hidden", "a/b", "", "é"])
def test_hostile_output_labels(label: str) -> None:
    with pytest.raises(InvalidRequest) as err:
        get_connector("canny").plan(ToolRequest("canny", {"image": "a"}, outputs={"output": label}))
    assert err.value.field == "outputs.output"


@pytest.mark.parametrize("source", HOSTILE)
def test_hostile_sources_never_reach_arguments(source: str) -> None:
    """Sources go to the core's staging only: refused if they hold control characters or are
    too long, else passed to staging while the sandbox name stays the connector's."""
    conn = get_connector("ndvi")
    try:
        plan = conn.plan(ToolRequest("ndvi", {"red": source, "nir": "b"}))
    except InvalidRequest as err:
        assert err.field == "inputs.red"
        assert any(ord(c) < 32 for c in source) or len(source) > 4096
        return
    assert_plan_safe(plan)
    assert plan.staging[0] == (source, "in_red.tif")
    assert not any(source in arg for arg in plan.arguments)


@pytest.mark.parametrize("tool", HOSTILE)
def test_hostile_tool_names(tool: str) -> None:
    with pytest.raises(UnknownTool):
        get_connector(tool)


def test_hostile_multiple_port_list() -> None:
    plan = get_connector("mosaic").plan(ToolRequest("mosaic", {"inputs": ["$(id)", "../../x"]}))
    assert_plan_safe(plan)
    with pytest.raises(InvalidRequest):
        get_connector("mosaic").plan(ToolRequest("mosaic", {"inputs": ["a", "b\nqueue 100"]}))


# -- GiSHEO notation -----------------------------------------------------------------------
@pytest.mark.parametrize("value", HOSTILE)
def test_hostile_gisheo_argument_values(value: str) -> None:
    try:
        req = parse(
            "outIMG_1 canny(inIMG_1#canny2#aperture_size)",
            f"<canny2={value}>#<aperture_size=3>",
            {"inIMG_1": "a"},
        )
    except InvalidRequest as err:
        assert err.field in ("argument-list", "params.canny2")
        return
    plan = get_connector("canny").plan(req)  # only a number survives, as a number
    assert_plan_safe(plan)
    assert isinstance(plan.params["canny2"], float)


@pytest.mark.parametrize("text", HOSTILE)
def test_hostile_gisheo_prototype(text: str) -> None:
    prototypes = [
        f"outIMG_1 canny(inIMG_1#{text})",
        f"outIMG_1 {text}(inIMG_1)",
        f"{text} canny(inIMG_1)",
        f"outIMG_1 canny(inIMG_1){text}",
        f"outIMG_1 canny({text})",
    ]
    for processing in prototypes:
        with pytest.raises((InvalidRequest, UnknownTool)):
            parse(processing, "", {"inIMG_1": "a"})


@pytest.mark.parametrize("text", HOSTILE)
def test_hostile_gisheo_names(text: str) -> None:
    with pytest.raises(InvalidRequest):  # in an argument-list name
        parse("outIMG_1 canny(inIMG_1#canny2)", f"<{text}=3>", {"inIMG_1": "a"})
    with pytest.raises(InvalidRequest) as err:  # as an input name
        parse("outIMG_1 canny(inIMG_1)", "", {"inIMG_1": "a", text: "b"})
    assert err.value.field == "inputs"


def test_gisheo_values_are_typed_before_reaching_arguments() -> None:
    req = parse("outIMG_1 canny(inIMG_1#canny2)", "<canny2=+1.5e2>", {"inIMG_1": "a"})
    plan = get_connector("canny").plan(req)
    assert "--canny2=150.0" in plan.arguments
    assert_plan_safe(plan)

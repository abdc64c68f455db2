"""SiLK grammar and the structured form: what parses, what is refused and where."""

from __future__ import annotations

from pathlib import Path

import pytest

from gproc.errors import LimitExceeded
from gproc.workflows import silk, structured
from gproc.workflows.compile import compile_workflow
from gproc.workflows.document import PortRef, WorkflowError, WorkflowSyntaxError

FIGURE7 = Path(__file__).parents[2] / "examples" / "workflows" / "figure7.silk"


def test_figure7_parses_as_written() -> None:
    doc = silk.parse(FIGURE7.read_text(), "figure7")
    assert [n.name for n in doc.nodes] == ["A0", "A", "B", "C"]
    assert [str(e) for e in doc.edges] == ["A0.o1 -> A.i1", "A.o1 -> B.i1", "B.o1 -> C.i1"]
    a0, a, b, c = doc.nodes
    assert a0.is_start and a0.sources == {"o1": ("FTP address",)} and a0.instances == 1
    assert b.processing == "outIMG_1 canny(inIMG_1#canny1#aperture_size#canny2)"
    assert b.argument_list == "<canny2=120>"
    assert c.is_last and not b.is_last
    assert a.meta == {"datagroup": "ID", "dataset": "ID"}  # unknown ones kept


def test_figure7_compiles_to_the_connectors() -> None:
    doc = silk.parse(FIGURE7.read_text(), "figure7")
    wf = compile_workflow(doc, max_nodes=10, sources={"A0": "/data/scene.tif"})
    assert [(j.dag_name, j.tool, j.parents) for j in wf.jobs] == [
        ("n0_A", "grayscale", ()),
        ("n1_B", "canny", ("n0_A",)),
        ("n2_C", "hough", ("n1_B",)),
    ]
    assert wf.inputs == (("w0.tif", "/data/scene.tif"),)
    hough = wf.jobs[2].arguments
    assert "--min_line_length=20.0" in hough and "--max_line_gap=10.0" in hough
    assert "--threshold=100" in hough and "--in-image=n1_output.tif" in hough
    assert "--canny2=120.0" in wf.jobs[1].arguments
    assert [j.final for j in wf.jobs] == [False, False, True]


SYNTAX_ERRORS = [
    # text, line, column, words in the message
    ("A:= [i1:input o1:output];", 1, 15, "expected"),
    ("A0[a=o1] -> ;", 1, 13, "a name"),
    ('A:= ["x"="y"]', 1, 13, "';'"),
    ("A:= [i1:inptu];", 1, 9, "input or output"),
    ("A %", 1, 3, "unexpected character"),
    ('A:= [o1:output="x"];\nB:= [i1:input,\n  o1:output "processing"="p"];', 3, 13, "expected"),
    ('A:= [o1:output="unterminated];', 1, 16, "unexpected character"),
    ("A0[a=o1] => B[i1=a];", 1, 10, "unexpected '='"),
]


@pytest.mark.parametrize(("text", "line", "column", "words"), SYNTAX_ERRORS)
def test_syntax_errors_point_at_line_and_column(
    text: str, line: int, column: int, words: str
) -> None:
    with pytest.raises(WorkflowSyntaxError) as info:
        silk.parse(text)
    assert (info.value.line, info.value.column) == (line, column)
    assert words in str(info.value)
    assert info.value.message.startswith(f"line {line}, column {column}:")


def test_comments_and_several_targets() -> None:
    text = """
    # two branches from one task, joined by a mosaic
    S:= [o1:output="/d/a.tif"];
    G:= [i1:input, o1:output, "processing"="outIMG_1 grayscale(inIMG_1)"];
    E:= [i1:input, o1:output, "processing"="outIMG_1 equalize(inIMG_1)"];  // second branch
    M:= [i1:input, i2:input, o1:output, "processing"="outIMG_1 mosaic(inIMG_1#inIMG_2#epsg)",
         "argument-list"="<epsg=4326>"];
    S[s=o1] -> G[i1=s], E[i1=s];
    G[g=o1], E[e=o1] -> M[i1=g, i2=e];
    """
    wf = compile_workflow(silk.parse(text), max_nodes=10)
    mosaic = wf.jobs[-1]
    by_node = {j.node: j for j in wf.jobs}
    assert mosaic.tool == "mosaic"
    assert mosaic.parents == (by_node["G"].dag_name, by_node["E"].dag_name)
    ins = [a for a in mosaic.arguments if a.startswith("--in-")]
    assert ins == [f"--in-inputs={by_node[n].outputs['output']}" for n in ("G", "E")]
    assert [j.final for j in wf.jobs] == [False, False, True]  # the leaf


def _silk(body: str) -> str:
    return 'S:= [o1:output="/d/a.tif"];\n' + body


REFUSED = [
    # (document, words in the error)
    (
        _silk(
            'A:= [i1:input, o1:output, "processing"="outIMG_1 nosuch(inIMG_1)"];\n'
            "S[s=o1] -> A[i1=s];"
        ),
        "unknown tool",
    ),
    (
        _silk(
            'A:= [i1:input, o1:output, "processing"="outIMG_1 canny(inIMG_1#canny9)"];\n'
            "S[s=o1] -> A[i1=s];"
        ),
        "unknown parameter",
    ),
    (
        _silk(
            'A:= [i1:input, o1:output, "processing"="outIMG_1 canny(inIMG_1#canny2)",'
            '"argument-list"="<canny2=-5>"];\nS[s=o1] -> A[i1=s];'
        ),
        "canny2",
    ),
    (
        _silk(
            'A:= [i1:input, o1:output, "processing"="outIMG_1 grayscale(inIMG_1)"];\n'
            "S[s=o1] -> A[i9=s];"
        ),
        "no input port i9",
    ),
    (
        _silk(
            'A:= [i1:input, o1:output, "processing"="outIMG_1 grayscale(inIMG_1)"];\n'
            "S[s=o7] -> A[i1=s];"
        ),
        "unknown node or port S.o7",
    ),
    (
        _silk(
            'A:= [i1:input, i2:input, o1:output, "processing"="outIMG_1 ndvi(inIMG_1#inIMG_2)"];\n'
            "S[s=o1] -> A[i1=s];"
        ),
        "input port i2 is not connected",
    ),
    (
        _silk(
            'A:= [i1:input, o1:output, "processing"="outIMG_1 grayscale(inIMG_1)"];\n'
            'B:= [i1:input, o1:output, "processing"="outIMG_1 grayscale(inIMG_1)"];\n'
            "S[s=o1] -> A[i1=s];\nA[a=o1] -> B[i1=a];\nB[b=o1] -> A[i1=b];"
        ),
        "already fed",
    ),
    (
        _silk(
            "H:= [i1:input, o1:output, o2:output,"
            ' "processing"="outIMG_1,outIMG_2 hough(inIMG_1)"];\n'
            'G:= [i1:input, o1:output, "processing"="outIMG_1 grayscale(inIMG_1)"];\n'
            "S[s=o1] -> H[i1=s];\nH[l=o2] -> G[i1=l];"
        ),
        "application/json",
    ),
    (
        _silk(
            'A:= [i1:input, o1:output, "processing"="outIMG_1 grayscale(inIMG_1)"];\n'
            "S[s=o1] -> A[i1=x];"
        ),
        "variable x is not bound",
    ),
    (_silk('A:= [o1:output, "isLast"="maybe"];'), "isLast"),
    (
        'S:= [o1:output, "instances"="2"];\n'
        'A:= [i1:input, o1:output, "processing"="outIMG_1 grayscale(inIMG_1)"];\n'
        "S[s=o1] -> A[i1=s];",
        "no data given",
    ),
    (
        _silk(
            'T:= [o1:output="/d/b.tif"];\n'
            'A:= [i1:input, o1:output, "processing"="outIMG_1 grayscale(inIMG_1)"];\n'
            "S[s=o1] -> A[i1=s];"
        ),
        "T.o1: this start port feeds no node",
    ),
    (
        _silk(
            'A:= [i1:input, "processing"="outIMG_1 grayscale(inIMG_1)"];\n'
            'A:= [i1:input, "processing"="outIMG_1 grayscale(inIMG_1)"];'
        ),
        "declared twice",
    ),
    ('S:= [o1:output="/d/a.tif", "k\x01"="v"];', "printable"),
]


@pytest.mark.parametrize(("text", "words"), REFUSED)
def test_refusals_name_what_is_wrong(text: str, words: str) -> None:
    with pytest.raises(WorkflowError) as info:
        compile_workflow(silk.parse(text), max_nodes=50)
    assert words in str(info.value)


def _cycle_doc() -> dict[str, object]:
    return {
        "inputs": {"img": "/d/a.tif"},
        "nodes": [
            {"id": "m", "tool": "mosaic", "params": {"epsg": 4326}},
            {"id": "g", "tool": "grayscale"},
            {"id": "e", "tool": "equalize"},
        ],
        "edges": [
            {"input": "img", "to": "m.inputs"},
            {"from": "e.output", "to": "m.inputs"},
            {"from": "m.output", "to": "g.image"},
            {"from": "g.output", "to": "e.image"},
        ],
    }


def test_cycle_is_refused_naming_the_cycle() -> None:
    with pytest.raises(WorkflowError) as info:
        compile_workflow(structured.from_dict(_cycle_doc()), max_nodes=50)
    assert "cycle: m -> g -> e -> m" in str(info.value)


def _ndvi_mosaic(scenes: int) -> dict[str, object]:
    return {
        "name": "ndvi_mosaic",
        "inputs": {
            "red": [f"/d/red{i}.tif" for i in range(scenes)],
            "nir": [f"/d/nir{i}.tif" for i in range(scenes)],
        },
        "nodes": [
            {"id": "ndvi", "tool": "ndvi"},
            {"id": "mosaic", "tool": "mosaic", "params": {"epsg": 32635}, "meta": {"x": "1"}},
        ],
        "edges": [
            {"input": "red", "to": "ndvi.red"},
            {"input": "nir", "to": "ndvi.nir"},
            {"from": "ndvi.output", "to": "mosaic.inputs"},
        ],
    }


def test_structured_fan_out_and_join() -> None:
    wf = compile_workflow(structured.from_dict(_ndvi_mosaic(8)), max_nodes=20)
    assert len(wf.jobs) == 9
    ndvi = wf.jobs[:8]
    assert [j.branch for j in ndvi] == list(range(8))
    assert ndvi[3].arguments[-3:] == (
        "--in-red=w3.tif",
        "--in-nir=w11.tif",
        "--out-output=n3_output.tif",
    )
    mosaic = wf.jobs[8]
    assert mosaic.parents == tuple(j.dag_name for j in ndvi)
    assert [a for a in mosaic.arguments if a.startswith("--in-")] == [
        f"--in-inputs=n{i}_output.tif" for i in range(8)
    ]
    assert mosaic.final and not any(j.final for j in ndvi) and mosaic.meta == {"x": "1"}


def test_node_limit_counts_expanded_nodes() -> None:
    with pytest.raises(LimitExceeded, match="expands to 9 DAG nodes; the limit is 8"):
        compile_workflow(structured.from_dict(_ndvi_mosaic(8)), max_nodes=8)
    with pytest.raises(LimitExceeded, match="4 nodes; the limit is 3"):
        compile_workflow(structured.from_dict(_ndvi_mosaic(1)), max_nodes=3)


STRUCTURED_REFUSED = [
    (lambda d: d["nodes"].append({"id": "x", "tool": "nosuch"}), "unknown tool 'nosuch'"),
    (lambda d: d["nodes"][0].update(params={"red_band": 0}), "red_band"),
    (lambda d: d["nodes"][0].update(colour="red"), "Extra inputs"),
    (lambda d: d["edges"].append({"from": "ndvi.output", "to": "ndvi.red"}), "already fed"),
    (lambda d: d["edges"].pop(1), "input port nir is not connected"),
    (lambda d: d["edges"][0].update(to="ndvi.blue"), "no input port blue"),
    (lambda d: d["edges"][0].update(to="ndvi"), "must be node.port"),
    (lambda d: d["nodes"][0].update(id="bad name;JOB"), "node id"),
    (lambda d: d["inputs"].update(nir=["/d/a.tif"] * 3), "different branch counts"),
    (lambda d: d["nodes"][1].update(meta={"k": "line\nbreak"}), "printable"),
]


@pytest.mark.parametrize(("change", "words"), STRUCTURED_REFUSED)
def test_structured_refusals(change, words: str) -> None:  # type: ignore[no-untyped-def]
    doc = _ndvi_mosaic(4)
    change(doc)
    with pytest.raises(WorkflowError) as info:
        compile_workflow(structured.from_dict(doc), max_nodes=50)
    assert words in str(info.value)


def test_sources_bind_start_ports_and_instances() -> None:
    text = (
        'S:= [o1:output, "instances"="3"];\n'
        'A:= [i1:input, o1:output, "processing"="outIMG_1 grayscale(inIMG_1)"];\n'
        "S[s=o1] -> A[i1=s];"
    )
    doc = silk.parse(text)
    wf = compile_workflow(doc, max_nodes=10, sources={"S.o1": ["/a", "/b", "/c"]})
    assert [j.dag_name for j in wf.jobs] == ["n0_A_0", "n1_A_1", "n2_A_2"]
    with pytest.raises(WorkflowError, match="3 instances declared, 2 sources"):
        compile_workflow(doc, max_nodes=10, sources={"S": ["/a", "/b"]})
    with pytest.raises(WorkflowError, match="not a start task"):
        compile_workflow(doc, max_nodes=10, sources={"A": ["/a"]})
    assert PortRef("S", "o1") == doc.edges[0].source


def test_the_ndvi_mosaic_example_compiles() -> None:
    text = (FIGURE7.parent / "ndvi_mosaic.json").read_text()
    wf = compile_workflow(structured.parse(text), max_nodes=100)
    assert [j.tool for j in wf.jobs] == ["ndvi"] * 8 + ["mosaic"]
    assert len(wf.inputs) == 16 and wf.jobs[-1].final

"""DAG and node submit files: structure, RETRY from settings, and injection attempts."""

from __future__ import annotations

import json
import stat
from dataclasses import replace
from pathlib import Path

import pytest

from gproc.connectors.base import EOTOOL
from gproc.workflows import silk, structured
from gproc.workflows.compile import compile_workflow
from gproc.workflows.document import WorkflowError
from gproc.wrappers.base import JobSpec
from gproc.wrappers.dag_base import DagNode, DagSpec, NodeStatus
from gproc.wrappers.htcondor.dag import (
    HTCondorDagRunner,
    dag_text,
    node_description,
    parse_node_status,
)
from gproc.wrappers.htcondor.submit import SubmitValueError

WID = "0123456789abcdef0123456789abcdef"
FIGURE7 = Path(__file__).parents[2] / "examples" / "workflows" / "figure7.silk"


def _nodes(run_dir: Path, retry: int = 2, meta: dict[str, str] | None = None) -> list[DagNode]:
    wf = compile_workflow(silk.parse(FIGURE7.read_text()), max_nodes=10, sources={"A0": "/x"})
    return [
        DagNode(
            name=j.dag_name,
            job=JobSpec(
                task_id=WID,
                executable=EOTOOL,
                arguments=j.arguments,
                input_files=tuple(run_dir / f for f in j.inputs),
                output_files=tuple(j.outputs.values()),
            ),
            parents=j.parents,
            retry=retry,
            meta_json=json.dumps(meta if meta is not None else dict(j.meta)),
        )
        for j in wf.jobs
    ]


def test_dag_file(tmp_path: Path) -> None:
    text = dag_text(_nodes(tmp_path, retry=3), status_interval_s=5)
    assert text.splitlines() == [
        "JOB n0_A n0_A.sub",
        "RETRY n0_A 3",
        "JOB n1_B n1_B.sub",
        "RETRY n1_B 3",
        "JOB n2_C n2_C.sub",
        "RETRY n2_C 3",
        "PARENT n0_A CHILD n1_B",
        "PARENT n1_B CHILD n2_C",
        "NODE_STATUS_FILE wf.status 5 ALWAYS-UPDATE",
    ]
    assert "RETRY" not in dag_text(_nodes(tmp_path, retry=0), status_interval_s=5)


def test_node_description_reuses_the_task_code(tmp_path: Path) -> None:
    desc = node_description(_nodes(tmp_path)[1], "inst", tmp_path)
    assert desc["executable"] == "eotool.py"
    assert desc["transfer_input_files"] == "n0_output.tif"
    assert desc["arguments"].startswith('"canny --canny1=100.0')
    assert (desc["output"], desc["error"]) == ("n1_B.out", "n1_B.err")
    assert "leave_in_queue" not in desc and "initialdir" not in desc
    assert "MY.GprocTaskId" not in desc
    assert desc["MY.GprocWorkflowId"] == f'"{WID}"' and desc["MY.GprocNode"] == '"n1_B"'
    assert desc["MY.GprocInstance"] == '"inst"'


BAD_NODE_NAMES = [
    "n0_A\nJOB evil evil.sub",
    "n0_A CHILD n1_B",
    "PARENT",
    "n0_A;x",
    "n0_" + "a" * 40,
]


@pytest.mark.parametrize("name", BAD_NODE_NAMES)
def test_dag_node_names_are_checked(tmp_path: Path, name: str) -> None:
    nodes = _nodes(tmp_path)
    evil = DagNode(name=name, job=nodes[0].job)
    with pytest.raises(SubmitValueError):
        dag_text([evil], 5)
    with pytest.raises(SubmitValueError):
        node_description(evil, "inst", tmp_path)


def test_document_node_names_cannot_carry_dag_syntax() -> None:
    for name in ["A\nJOB x x.sub", "A B", "A;", "1A", "A-B"]:
        doc = {
            "inputs": {"img": "/x"},
            "nodes": [{"id": name, "tool": "grayscale"}],
            "edges": [{"input": "img", "to": f"{name}.image"}],
        }
        with pytest.raises(WorkflowError, match="node id"):
            structured.from_dict(doc)
    with pytest.raises(WorkflowError):
        silk.parse('A\nJOB:= [o1:output="x"];')


def test_params_cannot_carry_submit_syntax() -> None:
    text = FIGURE7.read_text().replace("<canny2=120>", "<canny2=120\nqueue>")
    with pytest.raises(WorkflowError):
        compile_workflow(silk.parse(text), max_nodes=10, sources={"A0": "/x"})
    text = FIGURE7.read_text().replace("<canny2=120>", "<canny2=$(Owner)>")
    with pytest.raises(WorkflowError, match="argument-list"):
        compile_workflow(silk.parse(text), max_nodes=10, sources={"A0": "/x"})


def test_meta_attributes_are_passed_on_quoted(tmp_path: Path) -> None:
    meta = {"dataset": 'x" && queue 5 $(Owner) \\'}
    desc = node_description(_nodes(tmp_path, meta=meta)[0], "inst", tmp_path)
    value = desc["MY.GprocMeta"]
    assert "\n" not in value and "$(Owner)" not in value and "$(DOLLAR)(Owner)" in value
    assert value.startswith('"') and value.endswith('"')
    with pytest.raises(SubmitValueError, match=r"\$\$"):
        node_description(_nodes(tmp_path, meta={"k": "$$(Cmd)"})[0], "inst", tmp_path)
    text = FIGURE7.read_text().replace('"datagroup"="ID"', '"datagroup"="a\nb"', 1)
    with pytest.raises(WorkflowError):  # a newline never reaches a job description
        silk.parse(text)


def test_dagman_job_description(tmp_path: Path) -> None:
    runner = HTCondorDagRunner("inst")
    spec = DagSpec(WID, 2, tuple(_nodes(tmp_path / "run2")), (EOTOOL,), tmp_path / "run2")
    written = runner.write(spec)
    desc = runner.dagman_description(spec, [*written, *spec.files])
    assert desc["universe"] == "scheduler" and desc["executable"] == "/usr/bin/condor_dagman"
    assert "-AutoRescue 1" in desc["arguments"] and "-AllowVersionMismatch" in desc["arguments"]
    assert "_CONDOR_DAGMAN_USER_LOG_SCAN_INTERVAL=1" in desc["environment"]
    assert desc["MY.GprocWorkflowId"] == f'"{WID}"' and desc["MY.GprocAttempt"] == "2"
    assert desc["leave_in_queue"]  # the DAGMan job is spooled: it waits to be retrieved
    assert desc["MY.OtherJobRemoveRequirements"] == '"DAGManJobId =?= $(Cluster)"'
    shipped = desc["transfer_input_files"].split(",")
    assert {Path(p).name for p in shipped} >= {"wf.dag", "n0_A.sub", "n2_C.sub", "eotool.py"}
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "wf.dag").write_text("")
    with pytest.raises(SubmitValueError, match="share a base name"):
        runner.dagman_description(spec, [*written, tmp_path / "x" / "wf.dag"])


STATUS = """
[
  Type = "DagStatus";
  DagStatus = 6;
  NodesTotal = 3;
]
[
  Type = "NodeStatus";
  Node = "n0_A";
  NodeStatus = 5; /* "STATUS_DONE" */
  StatusDetails = "";
  RetryCount = 0;
]
[
  Type = "NodeStatus";
  Node = "n1_B";
  NodeStatus = 6; /* "STATUS_ERROR" */
  StatusDetails = "Job proc (29.0.0) failed with status 1";
  RetryCount = 2;
]
[
  Type = "NodeStatus";
  Node = "n2_C";
  NodeStatus = 7; /* "STATUS_FUTILE" */
  StatusDetails = "Had an ancestor node fail";
  RetryCount = 0;
]
[
  Type = "StatusEnd";
  EndTime = 1796172448;
]
"""


def test_node_status_file() -> None:
    reports = parse_node_status(STATUS)
    assert [(r.node, r.status, r.retries) for r in reports] == [
        ("n0_A", NodeStatus.DONE, 0),
        ("n1_B", NodeStatus.FAILED, 2),
        ("n2_C", NodeStatus.FUTILE, 0),
    ]
    assert reports[1].detail == "Job proc (29.0.0) failed with status 1"


def test_owners_proxy_goes_with_the_dag_to_every_node(tmp_path: Path) -> None:
    """Node jobs get the owner's delegated proxy: a 0600 copy next to the DAG (DAGMan
    submits the nodes from its spool directory), an input file of every node, named by
    X509_USER_PROXY; never x509userproxy (the shadow would delegate it, see dag.py)."""
    proxy = tmp_path / "delegated.pem"
    proxy.write_bytes(b"-----BEGIN CERTIFICATE-----\nproxy\n")
    run = tmp_path / "run1"
    nodes = [
        DagNode(n.name, replace(n.job, x509_proxy=proxy), n.parents, n.retry) for n in _nodes(run)
    ]
    runner = HTCondorDagRunner("inst")
    spec = DagSpec(WID, 1, tuple(nodes), (EOTOOL,), run)
    written = runner.write(spec)
    copy = run / "x509up.pem"
    assert copy in written and copy.read_bytes() == proxy.read_bytes()
    assert stat.S_IMODE(copy.stat().st_mode) == 0o600
    for node in nodes:
        desc = node_description(node, "inst", run)
        assert desc["transfer_input_files"].split(",")[-1] == "x509up.pem"
        assert desc["environment"] == '"X509_USER_PROXY=x509up.pem"'
        assert "x509userproxy" not in desc
        assert "X509_USER_PROXY=x509up.pem" in (run / f"{node.name}.sub").read_text()
    shipped = runner.dagman_description(spec, [*written, *spec.files])["transfer_input_files"]
    assert str(copy) in shipped.split(",")
    # without a delegation, no proxy travels
    plain = DagSpec(WID, 1, tuple(_nodes(tmp_path / "run2")), (EOTOOL,), tmp_path / "run2")
    assert not any(p.name == "x509up.pem" for p in runner.write(plain))
    assert "X509_USER_PROXY" not in (tmp_path / "run2" / "n0_A.sub").read_text()

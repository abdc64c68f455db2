"""Registered workflows as OGC processes: the workflow state -> job status table, and
the start-up check of the listed documents."""

from __future__ import annotations

from pathlib import Path

import pytest

from gproc.services.ogc.tables import WORKFLOW_STATUS, JobStatus, workflow_status
from gproc.services.ogc.workflows import RegisteredWorkflowError, load
from gproc.workflows.states import WorkflowState as W

REPO = Path(__file__).resolve().parents[2]
J = JobStatus

TABLE = [
    (W.REGISTERED, J.ACCEPTED),
    (W.SUBMITTING, J.ACCEPTED),
    (W.SUBMITTED, J.ACCEPTED),
    (W.HELD, J.ACCEPTED),
    (W.RUNNING, J.RUNNING),
    (W.COMPLETED, J.SUCCESSFUL),
    (W.FAILED, J.FAILED),
    (W.CANCELLED, J.DISMISSED),
    (W.PURGED, J.DISMISSED),
]


@pytest.mark.parametrize(("state", "status"), TABLE)
def test_workflow_state_to_job_status(state: W, status: JobStatus) -> None:
    assert workflow_status(state) == status


def test_table_covers_every_workflow_state() -> None:
    assert set(WORKFLOW_STATUS) == set(W) == {s for s, _ in TABLE}


def test_registered_documents_give_their_start_data_and_final_outputs() -> None:
    docs = {
        "edges": REPO / "examples" / "workflows" / "edges.silk",
        "figure7": REPO / "examples" / "workflows" / "figure7.silk",
    }
    reg = load(docs, max_nodes=50)
    assert (reg["edges"].inputs, reg["edges"].outputs) == (("S",), ("B.output",))
    assert reg["edges"].tools == {"grayscale", "canny"} and reg["edges"].pid == "workflow.edges"
    assert reg["figure7"].outputs == ("C.lines", "C.output")


@pytest.mark.parametrize(
    ("name", "text", "words"),
    [
        ("bad", "A:= [i1:input o1:output];", "line 1, column 15"),
        (
            "bad",
            'S:= [o1:output];\nA:= [i1:input, o1:output, "processing"="outIMG_1 nosuch(inIMG_1)"];'
            "\nS[s=o1] -> A[i1=s];",
            "unknown tool",
        ),
        ("no/slash", 'S:= [o1:output];\nA:= [i1:input, o1:output, "processing"="x"];', "bad name"),
    ],
)
def test_a_document_that_does_not_compile_is_refused(
    tmp_path: Path, name: str, text: str, words: str
) -> None:
    path = tmp_path / "w.silk"
    path.write_text(text)
    with pytest.raises(RegisteredWorkflowError, match=words):
        load({name: path}, max_nodes=50)


def test_a_missing_document_is_refused(tmp_path: Path) -> None:
    with pytest.raises(RegisteredWorkflowError, match="nosuch.silk"):
        load({"gone": tmp_path / "nosuch.silk"}, max_nodes=50)

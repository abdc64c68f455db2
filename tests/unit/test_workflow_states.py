"""Workflow and node state tables, and the derivation of a workflow's state."""

from __future__ import annotations

import pytest

from gproc.workflows.states import (
    DAG_JOB_TABLE,
    NODE_JOB_TABLE,
    NODE_REPORT_TABLE,
    TRANSITIONS,
    NodeState,
    WorkflowState,
    can_transition,
    derive,
)
from gproc.wrappers.base import JobState
from gproc.wrappers.dag_base import NodeStatus

W, J, N = WorkflowState, JobState, NodeStatus

DERIVE = [
    # DAGMan job state, node reports, workflow state
    (J.IDLE, [], W.SUBMITTED),
    (J.RUNNING, [N.DONE, N.QUEUED], W.RUNNING),
    (J.HELD, [], W.HELD),
    (J.COMPLETED, [N.DONE, N.DONE], W.COMPLETED),
    (J.COMPLETED, [], W.COMPLETED),
    (J.COMPLETED, [N.DONE, N.FAILED], W.FAILED),
    (J.COMPLETED, [N.DONE, N.FUTILE], W.FAILED),
    (J.FAILED, [N.DONE, N.FAILED, N.FUTILE], W.FAILED),
    (J.FAILED, [N.DONE], W.FAILED),
    (J.REMOVED, [N.DONE, N.QUEUED], W.CANCELLED),
    (J.UNKNOWN, [], None),
]


@pytest.mark.parametrize(("dag", "reports", "expected"), DERIVE)
def test_derive(dag: JobState, reports: list[NodeStatus], expected: WorkflowState | None) -> None:
    assert derive(dag, reports) == expected


def test_tables_cover_every_state() -> None:
    assert set(DAG_JOB_TABLE) == set(JobState)
    assert set(NODE_JOB_TABLE) == set(JobState)
    assert set(NODE_REPORT_TABLE) == set(NodeStatus)
    assert set(TRANSITIONS) == set(WorkflowState)


NODE_JOBS = [
    (J.IDLE, NodeState.IDLE),
    (J.RUNNING, NodeState.RUNNING),
    (J.HELD, NodeState.HELD),
    (J.COMPLETED, NodeState.DONE),
    (J.FAILED, NodeState.FAILED),
    (J.REMOVED, NodeState.REMOVED),
]


@pytest.mark.parametrize(("job", "node"), NODE_JOBS)
def test_node_from_its_job(job: JobState, node: NodeState) -> None:
    assert NODE_JOB_TABLE[job] == node


TRANSITION_CASES = [
    (W.REGISTERED, W.SUBMITTING, True),
    (W.REGISTERED, W.RUNNING, False),
    (W.SUBMITTING, W.SUBMITTING, True),  # a resend with a new attempt
    (W.SUBMITTING, W.SUBMITTED, True),
    (W.RUNNING, W.COMPLETED, True),
    (W.FAILED, W.SUBMITTING, True),  # retry
    (W.CANCELLED, W.SUBMITTING, True),
    (W.COMPLETED, W.SUBMITTING, False),
    (W.COMPLETED, W.PURGED, True),
    (W.RUNNING, W.PURGED, False),
    (W.PURGED, W.REGISTERED, False),
]


@pytest.mark.parametrize(("current", "target", "allowed"), TRANSITION_CASES)
def test_transitions(current: WorkflowState, target: WorkflowState, allowed: bool) -> None:
    assert can_transition(current, target) is allowed


def test_the_workflow_service_port_is_its_own() -> None:
    """``gproc workflow serve`` and every other front can run side by side on defaults."""
    from gproc.settings import Settings

    s = Settings()
    others = {
        "service": s.service.port,
        "gateway": s.gateway.port,
        "gateway sftp": s.gateway.sftp_port,
        "voms": s.vo.voms_port,
        "vo admin": s.vo.admin_port,
        "ogc": s.ogc.port,
        "catalogue": s.catalogue.port,
        "stac": s.catalogue.stac_port,
    }
    assert s.workflow.port not in others.values(), others

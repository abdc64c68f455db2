"""Every error the core's layers raise derives from the one error root with a
stable code (a table: error -> category and code), so each front maps it in one place."""

from __future__ import annotations

import pytest

from gproc import errors
from gproc.connectors import get_connector
from gproc.connectors.base import InvalidRequest, UnknownTool
from gproc.registry import ConcurrentChange, TaskNotFound
from gproc.states import InvalidTransition, TaskState
from gproc.vo import VoConflict, VoDenied, VoInvalid, VoNotFound
from gproc.wrappers.base import WmsError, WmsRejected, WmsUnavailable

CASES = [
    (InvalidRequest("params.x", "bad"), errors.InvalidRequest, "Client.InvalidRequest", False),
    (UnknownTool("nope"), errors.InvalidRequest, "Client.InvalidRequest", False),
    (WmsError("down"), errors.WmsUnavailable, "Server.WmsUnavailable", True),
    (WmsUnavailable("down"), errors.WmsUnavailable, "Server.WmsUnavailable", True),
    (WmsRejected("refused"), errors.WmsUnavailable, "Server.WmsRejected", False),
    (VoNotFound("no VO", field="vo"), errors.NotFound, "Client.NotFound", False),
    (VoConflict("exists"), errors.Conflict, "Client.Conflict", False),
    (VoInvalid("bad DN", field="dn"), errors.InvalidRequest, "Client.InvalidRequest", False),
    (VoDenied("vo-admin", "not an admin"), errors.NotAuthorised, "Client.NotAuthorised", False),
    (TaskNotFound("a" * 32), errors.NotFound, "Client.UnknownTask", False),
    (ConcurrentChange("moved"), errors.Conflict, "Client.StateConflict", True),
    (
        InvalidTransition("t", TaskState.COMPLETED, TaskState.RUNNING),
        errors.Conflict,
        "Client.StateConflict",
        False,
    ),
]


@pytest.mark.parametrize(("err", "category", "code", "retryable"), CASES)
def test_errors_derive_from_the_root_with_stable_codes(
    err: errors.GprocError, category: type[errors.GprocError], code: str, retryable: bool
) -> None:
    assert isinstance(err, category)
    assert err.code == code and err.retryable is retryable


def test_located_errors_keep_their_kind_and_fields() -> None:
    with pytest.raises(InvalidRequest) as exc:
        from gproc.connectors import ToolRequest

        get_connector("canny").plan(ToolRequest("canny", {"image": "a"}, {"canny1": -1}))
    located = exc.value.at(index=7, task_id="b" * 32)
    assert isinstance(located, InvalidRequest) and located.field == "params.canny1"
    assert located.index == 7 and located.task_id == "b" * 32
    assert exc.value.index is None  # the original is left as it is
    assert located.details()["index"] == "7"
    vo = VoDenied("vo-admin", "no").at(index=2)
    assert vo.rule == "vo-admin" and vo.index == 2
    missing = TaskNotFound("c" * 32).at(index=4)
    assert missing.task_id == "c" * 32 and missing.index == 4 and str(missing).startswith("unknown")

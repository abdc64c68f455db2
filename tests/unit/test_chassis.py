"""The chassis's pure parts: each front's one error table, fault details, validated
CLI overrides, and the command groups mounted on ``gproc``."""

from __future__ import annotations

import click
import pytest
from click.testing import CliRunner

from gproc import errors
from gproc.connectors.base import UnknownTool
from gproc.domain import InvalidTaskRequest, NotReady, TaskStateConflict
from gproc.registry import TaskNotFound
from gproc.security.errors import CredentialError, Reason
from gproc.security.policy import Denied
from gproc.services.chassis import serve
from gproc.services.cli import main
from gproc.services.soap import faults as processing
from gproc.services.vo_admin import types as vo_admin
from gproc.settings import Settings
from gproc.vo import VoDenied, VoNotFound
from gproc.wrappers.base import WmsUnavailable

CASES: list[tuple[BaseException, str, str]] = [  # error, processing fault, VO admin fault
    (errors.InvalidRequest("bad", field="x"), "Client.InvalidRequest", "Client.InvalidRequest"),
    (InvalidTaskRequest("tool", "bad"), "Client.InvalidRequest", "Client.InvalidRequest"),
    (UnknownTool("nope"), "Client.InvalidRequest", "Client.InvalidRequest"),
    (errors.NotFound("gone"), "Client.UnknownTask", "Client.NotFound"),
    (TaskNotFound("ab"), "Client.UnknownTask", "Client.NotFound"),
    (VoNotFound("no vo", field="vo"), "Client.UnknownTask", "Client.NotFound"),
    (errors.Conflict("exists"), "Client.StateConflict", "Client.Conflict"),
    (TaskStateConflict("state"), "Client.StateConflict", "Client.Conflict"),
    (NotReady("not yet"), "Client.NotReady", "Client.Conflict"),
    (errors.LimitExceeded("big"), "Client.LimitExceeded", "Client.LimitExceeded"),
    (Denied("r", "no"), "Client.NotAuthorised", "Client.NotAuthorised"),
    (VoDenied("vo-admin", "no"), "Client.NotAuthorised", "Client.NotAuthorised"),
    (
        CredentialError(Reason.EXPIRED, "old"),
        "Client.CredentialRefused",
        "Server.Internal",
    ),
    (errors.WmsUnavailable("down"), "Server.WmsUnavailable", "Server.Internal"),
    (WmsUnavailable("down"), "Server.WmsUnavailable", "Server.Internal"),
    (errors.StorageUnavailable("full"), "Server.StorageUnavailable", "Server.Internal"),
    (errors.Unavailable("later"), "Server.Unavailable", "Server.Internal"),
    (RuntimeError("bug"), "Server.Internal", "Server.Internal"),
]


@pytest.mark.parametrize("error,proc_code,vo_code", CASES, ids=lambda x: type(x).__name__)
def test_each_front_maps_errors_by_code(error: BaseException, proc_code: str, vo_code: str) -> None:
    for table, code in ((processing.ERRORS, proc_code), (vo_admin.ERRORS, vo_code)):
        fault = table.to_fault(error)
        assert (error, fault.faultcode) == (error, code)
        assert table.faults.declared(fault)  # the front's own type, in its namespace


def test_faults_carry_the_errors_location() -> None:
    err = errors.InvalidRequest("too long", field="params.x").at(index=7, task_id="ab12")
    info = processing.ERRORS.to_fault(err).info  # type: ignore[attr-defined]
    assert (info["field"], info["index"], info["task_id"]) == ("params.x", "7", "ab12")
    assert info["message"] == "item 7, task ab12, params.x: too long"


def test_another_services_fault_becomes_this_services_twin() -> None:
    foreign = processing.MalformedRequestFault("bad", field="x")
    own = vo_admin.ERRORS.to_fault(foreign)
    assert type(own) is vo_admin.FAULTS.MalformedRequestFault
    assert own.info["field"] == "x"  # type: ignore[attr-defined]


def test_a_table_names_only_its_own_faults() -> None:
    with pytest.raises(ValueError, match="not declared"):
        type(processing.ERRORS)(vo_admin.FAULTS, {"Client.NotFound": processing.UnknownTaskFault})


OVERRIDES = {"port": "service.port", "threads": "service.threads", "gw_port": "gateway.port"}


def test_overrides_are_applied_and_validated() -> None:
    settings = serve.apply_overrides(
        Settings(), {"port": 9000, "threads": None, "gw_port": 9001}, OVERRIDES
    )
    assert (settings.service.port, settings.gateway.port) == (9000, 9001)
    assert settings.service.threads == Settings().service.threads  # not given: unchanged
    for option, value in (("threads", 0), ("port", 70000)):
        with pytest.raises(click.BadParameter) as info:
            serve.apply_overrides(Settings(), {option: value}, OVERRIDES)
        assert f"--{option}" in info.value.format_message()
    with pytest.raises(click.UsageError, match="service.cert"):
        serve.require(Settings(), "service.cert")


@pytest.mark.parametrize("group", ["pool", "pki", "serve", "vo", "gateway"])
def test_command_groups_are_mounted(group: str) -> None:
    result = CliRunner().invoke(main, [group, "--help"])
    assert result.exit_code == 0, result.output


def test_serve_loop_freezes_start_up_objects_out_of_the_collector() -> None:
    import gc
    import threading

    from gproc.services.chassis import serve

    class Part:
        def start(self) -> None:
            pass

        def stop(self) -> None:
            pass

    gc.unfreeze()
    assert gc.get_freeze_count() == 0
    stop = threading.Event()
    runner = threading.Thread(
        target=serve.run,
        args=([Part()],),
        kwargs={"banner": lambda: "up", "name": "t", "stop": stop},
    )
    runner.start()
    try:
        deadline = threading.Event()
        for _ in range(50):
            if gc.get_freeze_count() > 0:
                break
            deadline.wait(0.1)
        assert gc.get_freeze_count() > 0
    finally:
        stop.set()
        runner.join(10)
        gc.unfreeze()

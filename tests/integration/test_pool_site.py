"""gproc against a pool it does not manage, whose collector and schedd are on "another
host": a second pool in its own network namespace, reached by its veth address with
nothing but the ``[htcondor]`` settings for an existing pool."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import htcondor2
import pytest

from gproc.app import build_service
from gproc.lifecycle import TaskService
from gproc.settings import Settings
from gproc.states import TaskState
from gproc.tracker import Tracker
from gproc.wrappers.htcondor import factory, host
from gproc.wrappers.htcondor.pool import ExternalPool, PersonalPool
from tests.fixtures.core import requests_for, wait_for
from tests.integration.connector_cases import CASES


@pytest.fixture(scope="module")
def site(pool: Any) -> Iterator[dict[str, Any]]:
    """The ``[htcondor]`` settings of a second pool in a network namespace."""
    if not isinstance(pool, PersonalPool):
        pytest.skip("the site is made from the personal pool's root")
    name = f"s{uuid.uuid4().hex[:8]}"
    try:
        yield pool.sites.add(name, timeout=90)
    finally:
        pool.sites.remove(name, timeout=5)
        pool.activate_client()


def test_the_site_is_reachable_by_its_veth_address_only(site: dict[str, Any], pool: Any) -> None:
    address, _, port = site["collector"].partition(":")
    assert not address.startswith("127.")
    ext = ExternalPool(
        site["condor_config"], Path(site["event_log"]), site["collector"], site["schedd_name"]
    )
    try:
        info = ext.status()
        assert info["up"] is True and info["slots"] >= 1, info
    finally:
        pool.activate_client()
    assert not host.port_open("127.0.0.1", int(port))  # nothing of the site on the loopback


def test_a_task_runs_on_the_existing_pool_named_by_the_htcondor_settings(
    site: dict[str, Any], tmp_path: Path, pool: Any
) -> None:
    config = {k: site[k] for k in ("condor_config", "collector", "schedd_name", "event_log")}
    config["instance"] = f"t{uuid.uuid4().hex[:12]}"
    svc: TaskService | None = None
    try:
        wms = factory.create(config, tmp_path / "state")
        svc = build_service(Settings(state_dir=tmp_path / "state"), wms=wms)
        case = next(c for c in CASES if c.tool == "ndvi")
        (tmp_path / "in").mkdir()
        inputs = case.make_inputs(tmp_path / "in")
        view = svc.register(requests_for([case.request(inputs)]))[0]
        svc.submit([view.id])
        done = wait_for(Tracker(svc), svc, [view.id], timeout=120)[0]
        assert done.state == TaskState.COMPLETED, (done.state_reason, svc.log(view.id))
        assert done.job_id and done.job_id.startswith(site["schedd_name"] + "#")
        case.check({o.port: Path(o.path) for o in done.outputs})
        kinds = [e["kind"] for e in svc.log(view.id)["events"]]
        assert "EXECUTE" in kinds  # followed through the site's event log
        assert f'GprocTaskId = "{view.id}"' in Path(site["event_log"]).read_text(errors="replace")
    finally:
        if svc is not None:
            svc.registry.close()
        pool.activate_client()
    # the personal pool's own schedd never saw the job
    mine = htcondor2.Schedd().query(f'GprocTaskId == "{view.id}"', ["ClusterId"])
    assert mine == []

"""A running job's delegated proxy renewed from MyProxy and handed to the job through
the schedd (refreshGSIProxy), on the real pool. The delegation lives 3 minutes: the
schedd refuses a job whose proxy has less than CRED_MIN_TIME_LEFT (120 s) left."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from gproc.models import TaskRow
from gproc.registry import Registry
from gproc.security.chain import Validator
from gproc.security.delegation import DelegationStore, RenewalRequest, sign_request
from gproc.security.myproxy import logon
from gproc.services.renewal import ProxyRenewer, TaskProxyRefresher
from gproc.wrappers.base import JobSpec
from gproc.wrappers.htcondor.schedd import HTCondorWMS
from tests.fixtures.myproxy import MyProxyStack

PASS = "pool-renewal-1"


@pytest.fixture
def wms(pool: object, tmp_path: Path) -> Iterator[HTCondorWMS]:
    wms = HTCondorWMS(instance=f"rn{uuid.uuid4().hex[:10]}", sandbox_root=tmp_path / "sb")
    yield wms
    jobs = wms.find_jobs()
    if jobs:
        wms.cancel([j.job_id for j in jobs.values()], "test cleanup")
        wms.forget([j.job_id for j in jobs.values()])


def _expiration(wms: HTCondorWMS, job_id: str, not_this: int | None = None) -> int:
    """The proxy expiry the schedd holds for the job, once it has one (other than
    ``not_this``); the schedd reads the proxy after the spooled upload."""
    cluster = job_id.split("#")[1].split(".")[0]
    deadline = time.monotonic() + 30
    while True:
        [ad] = wms._get_schedd().query(f"ClusterId == {cluster}", ["x509UserProxyExpiration"])
        if "x509UserProxyExpiration" in ad and int(ad["x509UserProxyExpiration"]) != not_this:
            return int(ad["x509UserProxyExpiration"])
        assert time.monotonic() < deadline, "the schedd shows no (new) proxy expiry"
        time.sleep(0.5)


def test_a_renewed_delegation_reaches_the_schedd_for_the_tasks_job(
    wms: HTCondorWMS, myproxy: MyProxyStack, pki_validator: Validator, tmp_path: Path
) -> None:
    pki = myproxy.pki
    myproxy.store("alice", "alice-pool", PASS)
    myproxy.store_renewable("alice", "alice-pool-renew")
    store = DelegationStore(tmp_path / "delegation", pki_validator)
    user_proxy = logon(myproxy.server(), "alice-pool", PASS, 1800)
    caller = pki_validator.validate(user_proxy)
    chain = sign_request(store.get_request(caller, "job"), user_proxy, timedelta(minutes=3))
    info = store.put_proxy(caller, "job", chain)
    store.ask_renewal(
        caller, "job", RenewalRequest("alice-pool-renew", f"127.0.0.1:{myproxy.port}")
    )

    exe = tmp_path / "sleep.sh"
    exe.write_text("#!/bin/sh\nsleep 120\n")
    exe.chmod(0o755)
    task_id = uuid.uuid4().hex
    [job] = wms.submit([JobSpec(task_id=task_id, executable=exe, x509_proxy=info.path)])
    assert abs(_expiration(wms, job.job_id) - info.not_after.timestamp()) < 2

    registry = Registry(f"sqlite:///{tmp_path / 'gproc.db'}")
    try:
        registry.insert_tasks(
            [
                TaskRow(
                    id=task_id,
                    owner_dn=caller.subject_grid,
                    tool="sleep",
                    request_json="{}",
                    plan_json="{}",
                    state="idle",
                    job_id=job.job_id,
                    x509_proxy=str(info.path),
                )
            ]
        )
        renewer = ProxyRenewer(
            store,
            myproxy.server(),
            pki_validator,
            service_cert=pki.host_cert,
            service_key=pki.host_key,
            before=timedelta(seconds=90),
            lifetime_s=1200,
            refresher=TaskProxyRefresher(registry, wms),
        )
        [done] = renewer.run_once(now=datetime.now(UTC) + timedelta(seconds=100))
    finally:
        registry.close()
    assert done.renewed and done.jobs_refreshed == 1, done.error
    old = int(info.not_after.timestamp())
    assert _expiration(wms, job.job_id, not_this=old) == int(done.not_after.timestamp())
    assert done.not_after > info.not_after + timedelta(minutes=15)

"""Three ``gproc serve`` replicas behind a real HAProxy (TLS passthrough) on one
PostgreSQL, on the real pool: 1,000 submissions from 8 clients while one replica is
killed with SIGKILL and another restarted; every task completes, none is lost, none
has two jobs; then the tracker leader is killed and another replica takes over
within two tracker intervals.

Every replica runs the tracker part; leadership (a PostgreSQL advisory lock)
decides which one tracks. Clients retry a call that failed on the way (the replica
died under it) with the same request ids: registration is idempotent by request id
and submitting a submitted task changes nothing, so a retry never makes a second
task or job.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import zeep
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine
from zeep.transports import Transport

from gproc.leader import current_leader
from gproc.security.pki import TestPKI
from gproc.wrappers.htcondor.pool import PersonalPool
from tests.fixtures.haproxy import free_port, passthrough_config
from tests.fixtures.replicas import (
    ReplicaSet,
    environ,
    leader_lines,
    remove_jobs,
    schedd_jobs,
    serve_argv,
)
from tests.fixtures.soap import POLICY

# 1,000 tasks, as the scale-out issue asks: about 3 minutes on a 2-core machine, bound
# by the CPU (16 slots instead of 8 were no faster); GPROC_TEST_REPLICA_TASKS sets
# another number
TASKS = int(os.environ.get("GPROC_TEST_REPLICA_TASKS", "1000"))
CLIENTS, BATCH = 8, 25
INTERVAL_S = 1.0
TIF_SAMPLE = Path(__file__).resolve().parents[2] / "examples"


def _tif_pair(tmp: Path) -> tuple[bytes, bytes]:
    import importlib.util
    import sys

    spec = importlib.util.spec_from_file_location("ndvi_sample", TIF_SAMPLE / "ndvi_sample.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["ndvi_sample"] = module
    spec.loader.exec_module(module)
    module.make(tmp)
    return (tmp / "red.tif").read_bytes(), (tmp / "nir.tif").read_bytes()


@pytest.fixture
def cluster(
    pool: Any,
    test_pki: TestPKI,
    pg_database: Callable[[], str],
    haproxy_factory: Callable[[str], int],
    tmp_path: Path,
) -> Iterator[tuple[ReplicaSet, str, Engine, str]]:
    url = pg_database()
    instance = f"ha{uuid.uuid4().hex[:10]}"
    state = tmp_path / "state"
    shared = _share_state(pool, state)
    env = environ(
        GPROC_STATE_DIR=str(state),
        GPROC_DATABASE__URL=url,
        GPROC_HTCONDOR__INSTANCE=instance,
        GPROC_HTCONDOR__SHARED_FILESYSTEM=str(bool(shared)).lower(),
        GPROC_TRACKER__INTERVAL_S=str(INTERVAL_S),
        GPROC_TRACKER__RECONCILE_EVERY="5",
        GPROC_TRACKER__SUBMIT_GRACE_S="5",
        GPROC_TRACKER__CLAIM_LEASE_S="6",
    )
    files = {
        "cert": test_pki.host_cert,
        "key": test_pki.host_key,
        "ca-dir": test_pki.ca_dir,
        "vomsdir": test_pki.vomsdir,
    }
    rs = ReplicaSet(serve_argv(files, POLICY), env, tmp_path)
    for i in range(3):
        rs.add(f"r{i}", free_port())
    front = free_port()
    haproxy_factory(passthrough_config(front, [r.port for r in rs.replicas]))
    engine = create_engine(url)
    try:
        for r in rs.replicas:
            rs.start(r)
        yield rs, f"https://127.0.0.1:{front}/", engine, instance
    finally:
        rs.close()
        remove_jobs(instance)
        engine.dispose()
        for d in shared:
            pool.unshare(d)


def _share_state(pool: Any, state: Path) -> list[Path]:
    """Shared-filesystem mode on the personal pool (no spool upload, no output
    retrieval: the cheapest way through the schedd): the replicas' state directory
    names the session's pool (``state/pool``) and the pool's root sees the task and
    sandbox directories at the same paths. Another pool: spooled mode."""
    if not isinstance(pool, PersonalPool):
        state.mkdir(parents=True)
        return []
    dirs = [state / "tasks", state / "sandboxes"]
    for d in dirs:
        d.mkdir(parents=True, mode=0o755)
    (state / "pool").symlink_to(pool.dir)
    for d in dirs:
        pool.share(d)
    return dirs


def _client(url: str, pki: TestPKI, ca_file: Path) -> Any:
    session = requests.Session()
    session.trust_env = False
    session.cert = str(pki.proxies["alice-voms"])
    session.verify = str(ca_file)
    client = zeep.Client(url + "?wsdl", transport=Transport(session=session, timeout=60))
    binding = next(iter(client.wsdl.bindings))
    return client.create_service(binding, url)


retries: list[int] = []


def _retrying(call: Callable[[], Any], deadline: float) -> Any:
    """A call through the balancer; a replica dying under it breaks the connection
    (or HAProxy answers before it noticed): try again, with the same arguments."""
    while True:
        try:
            return call()
        except (requests.RequestException, zeep.exceptions.TransportError):
            if time.monotonic() > deadline:
                raise
            retries.append(1)
            time.sleep(0.3)


def _count(engine: Engine, where: str = "") -> Counter[str]:
    with engine.connect() as conn:
        rows = conn.execute(text(f"SELECT state, count(*) FROM tasks {where} GROUP BY state"))
        return Counter({str(s): int(n) for s, n in rows})


def test_three_replicas_behind_haproxy_lose_nothing_and_double_nothing(
    cluster: tuple[ReplicaSet, str, Engine, str], test_pki: TestPKI, tmp_path: Path
) -> None:
    started = time.monotonic()
    rs, url, engine, instance = cluster
    ca_file = tmp_path / "ca.pem"
    ca_file.write_bytes(test_pki.ca.cert_pem())
    red, nir = _tif_pair(tmp_path / "tif")
    run = uuid.uuid4().hex[:6]
    submitted = Counter[int]()
    lock = threading.Lock()
    errors: list[str] = []
    deadline = time.monotonic() + 150 + TASKS * 0.1

    def client(k: int) -> None:
        svc = _client(url, test_pki, ca_file)
        per = TASKS // CLIENTS + (k < TASKS % CLIENTS)
        for b in range(0, per, BATCH):
            specs = [
                {
                    "tool": "ndvi",
                    "inputs": [{"name": "red", "content": red}, {"name": "nir", "content": nir}],
                    "client_request_id": f"{run}-c{k}-{i}",
                }
                for i in range(b, min(b + BATCH, per))
            ]
            tasks = _retrying(lambda specs=specs: svc.RegisterTask(tasks=specs), deadline)
            ids = [t.task_id for t in tasks]
            _retrying(lambda ids=ids: svc.SubmitTask(task_ids=ids), deadline)
            with lock:
                submitted[k] += len(ids)

    def chaos() -> None:
        r1, r2 = rs.replicas[1], rs.replicas[2]
        while sum(submitted.values()) < TASKS * 0.3 and time.monotonic() < deadline:
            time.sleep(0.05)
        rs.kill9(r1)  # in the middle of the traffic
        while sum(submitted.values()) < TASKS * 0.6 and time.monotonic() < deadline:
            time.sleep(0.05)
        rs.stop(r2)  # a restart: graceful stop, start again
        rs.start(r2)
        rs.start(r1)  # the killed one comes back too

    threads = [threading.Thread(target=_guard(client, k, errors)) for k in range(CLIENTS)]
    threads.append(threading.Thread(target=_guard(chaos, None, errors)))
    for t in threads:
        t.start()
    for t in threads:
        t.join(200)
    assert not errors, errors
    assert sum(submitted.values()) == TASKS
    submit_s = time.monotonic() - started
    print(f"\nreplicas: {TASKS} tasks registered and submitted in {submit_s:.1f} s")

    # every task completes on the pool (the leader tracks; outputs staged out)
    done_by = time.monotonic() + 120 + TASKS * 0.6
    while (states := _count(engine))["completed"] < TASKS and time.monotonic() < done_by:
        time.sleep(1.0)
    assert states == Counter({"completed": TASKS}), (states, _reasons(engine))  # 0 lost
    with engine.connect() as conn:
        keys = conn.execute(text("SELECT client_request_id, id, attempt FROM tasks")).all()
    assert len({k for k, _, _ in keys}) == TASKS  # one task per request id
    attempts = {tid: a for _, tid, a in keys}
    jobs = schedd_jobs(instance).values()
    per_attempt = Counter((j.task_id, j.attempt) for j in jobs)
    assert max(per_attempt.values()) == 1, per_attempt.most_common(3)  # 0 doubled
    completed = Counter(j.task_id for j in jobs if j.status == 4)
    assert set(completed) == set(attempts) and set(completed.values()) == {1}
    assert all(j.attempt == attempts[j.task_id] for j in jobs if j.status == 4)
    complete_s = time.monotonic() - started
    with engine.connect() as conn:
        q = "SELECT kind, count(*) FROM task_events WHERE kind IN ('ADOPTED', 'RESEND', "
        kinds = dict(conn.execute(text(q + "'ORPHAN_REMOVED') GROUP BY kind")).all())

    # the tracker leader dies; another replica takes the lead
    holder = current_leader(engine)
    assert holder is not None
    leader = rs.by_name(holder["replica"])
    killed = time.monotonic()
    rs.kill9(leader)
    while True:
        now = current_leader(engine)
        if now is not None and now["replica"] != leader.name:
            break
        assert time.monotonic() - killed < 10 * INTERVAL_S, "no replica took the lead"
        time.sleep(0.02)
    gap = time.monotonic() - killed
    new = rs.by_name(now["replica"])
    logged_by = time.monotonic() + 5  # the lock is taken, then it is logged
    while not leader_lines(new.log) and time.monotonic() < logged_by:
        time.sleep(0.05)
    assert leader_lines(new.log), "the new leader says so in its log"
    print(
        f"\nreplicas: {TASKS} tasks submitted in {submit_s:.1f} s, all completed at "
        f"{complete_s:.1f} s; leader {leader.name} killed, {new.name} led after {gap:.2f} s "
        f"(tracker interval {INTERVAL_S} s); {len(per_attempt)} jobs for {TASKS} tasks; "
        f"recovery events {kinds}; client retries {sum(retries)}"
    )
    assert gap <= 2 * INTERVAL_S


def _reasons(engine: Engine) -> list[Any]:
    with engine.connect() as conn:
        q = "SELECT state, state_reason, count(*) FROM tasks WHERE state != 'completed' "
        return list(conn.execute(text(q + "GROUP BY state, state_reason LIMIT 20")))


def _guard(fn: Callable[..., None], arg: int | None, errors: list[str]) -> Callable[[], None]:
    def run() -> None:
        try:
            fn() if arg is None else fn(arg)
        except Exception as exc:  # noqa: BLE001 - reported by the test
            errors.append(f"{type(exc).__name__}: {exc}"[:500])

    return run

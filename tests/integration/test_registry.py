"""The task registry on both databases: SQLite (default) and a real PostgreSQL server."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import text

from gproc.models import TaskRow
from gproc.registry import BadPageToken, ConcurrentChange, Registry, TaskFilter, TaskNotFound
from gproc.states import InvalidTransition, TaskState

S = TaskState


@pytest.fixture(params=["sqlite", "postgresql"])
def registry(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Registry]:
    if request.param == "sqlite":
        reg = Registry(f"sqlite:///{tmp_path / 'gproc.db'}")
    else:
        reg = Registry(request.getfixturevalue("postgres_url"))
        with reg.engine.begin() as conn:  # each test starts from empty tables
            conn.execute(text("DELETE FROM task_events; DELETE FROM tasks; DELETE FROM gproc_meta"))
    yield reg
    reg.close()


def _row(owner: str = "/CN=ann", request_id: str | None = None, tool: str = "ndvi") -> TaskRow:
    return TaskRow(
        id=uuid.uuid4().hex,
        owner_dn=owner,
        tool=tool,
        request_json="{}",
        plan_json="{}",
        state=str(S.REGISTERED),
        client_request_id=request_id,
    )


def test_sqlite_runs_with_wal_and_full_sync(tmp_path: Path) -> None:
    reg = Registry(f"sqlite:///{tmp_path / 'x.db'}")
    with reg.engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA synchronous")).scalar() == 2  # FULL
    reg.close()


def test_insert_and_get(registry: Registry) -> None:
    rows = [_row(), _row()]
    stored = registry.insert_tasks(rows)
    assert [r.id for r in stored] == [r.id for r in rows]
    assert registry.get(rows[0].id).owner_dn == "/CN=ann"
    assert [e.kind for e in registry.events(rows[0].id)] == ["REGISTERED"]
    with pytest.raises(TaskNotFound):
        registry.get(uuid.uuid4().hex)


def test_same_request_id_returns_the_existing_task(registry: Registry) -> None:
    first = registry.insert_tasks([_row(request_id="req-1")])[0]
    again = registry.insert_tasks([_row(request_id="req-1")])[0]
    assert again.id == first.id
    other_owner = registry.insert_tasks([_row(owner="/CN=bob", request_id="req-1")])[0]
    assert other_owner.id != first.id  # request ids are per owner
    rows, total = registry.list_tasks(TaskFilter(owner_dn="/CN=ann"))
    assert total == 1


def test_duplicate_request_ids_within_one_batch_make_one_task(registry: Registry) -> None:
    out = registry.insert_tasks([_row(request_id="r"), _row(request_id="r")])
    assert out[0].id == out[1].id
    assert registry.list_tasks(TaskFilter())[1] == 1


def test_concurrent_registrations_with_one_request_id_make_one_task(registry: Registry) -> None:
    results: list[str] = []

    def worker() -> None:
        results.append(registry.insert_tasks([_row(request_id="race")])[0].id)

    threads = [threading.Thread(target=worker) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(results)) == 1
    assert registry.list_tasks(TaskFilter())[1] == 1


def test_transition_is_compare_and_set(registry: Registry) -> None:
    row = registry.insert_tasks([_row()])[0]
    registry.transition(row.id, S.REGISTERED, S.SUBMITTING, attempt=1)
    with pytest.raises(ConcurrentChange):  # someone else already moved it
        registry.transition(row.id, S.REGISTERED, S.SUBMITTING)
    with pytest.raises(InvalidTransition):
        registry.transition(row.id, S.SUBMITTING, S.PURGED)
    got = registry.get(row.id)
    assert got.state == S.SUBMITTING and got.attempt == 1
    assert [e.kind for e in registry.events(row.id)] == ["REGISTERED", "SUBMITTING"]


def test_transition_many_is_all_or_nothing(registry: Registry) -> None:
    a, b = registry.insert_tasks([_row(), _row()])
    registry.transition(b.id, S.REGISTERED, S.CANCELLED)
    with pytest.raises(ConcurrentChange):
        registry.transition_many([a.id, b.id], S.REGISTERED, S.SUBMITTING)
    assert registry.get(a.id).state == S.REGISTERED


def test_attempt_increments_in_sql(registry: Registry) -> None:
    row = registry.insert_tasks([_row()])[0]
    registry.transition(row.id, S.REGISTERED, S.SUBMITTING, attempt=TaskRow.attempt + 1)  # type: ignore[arg-type]
    registry.transition(row.id, S.SUBMITTING, S.SUBMITTING, attempt=TaskRow.attempt + 1)  # type: ignore[arg-type]
    assert registry.get(row.id).attempt == 2


def test_list_filters_and_pages(registry: Registry) -> None:
    registry.insert_tasks([_row(tool="ndvi") for _ in range(5)] + [_row(tool="canny")])
    page, total = registry.list_tasks(TaskFilter(tool="ndvi"), offset=0, limit=2)
    assert total == 5 and len(page) == 2
    rest, _ = registry.list_tasks(TaskFilter(tool="ndvi"), offset=2, limit=10)
    assert len(rest) == 3 and not {r.id for r in page} & {r.id for r in rest}
    assert registry.list_tasks(TaskFilter(states=(S.RUNNING,)))[1] == 0
    assert len(registry.in_states([S.REGISTERED])) == 6


def test_meta_roundtrip(registry: Registry) -> None:
    assert registry.get_meta("k") is None
    registry.set_meta("k", "v1")
    registry.set_meta("k", "v2")
    assert registry.get_meta("k") == "v2"


def test_keyset_pages_visit_every_task_once_even_with_equal_times(registry: Registry) -> None:
    when = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
    rows = [_row(owner="/CN=pager") for _ in range(11)]
    for i, r in enumerate(rows):
        r.created_at = when if i < 6 else when + timedelta(seconds=i)  # six share one time
    registry.insert_tasks(rows + [_row(owner="/CN=other")])
    flt = TaskFilter(owner_dn="/CN=pager")
    seen, token, pages = [], None, 0
    while True:
        page = registry.page(flt, limit=4, after=token)
        assert page.total is None
        seen += [r.id for r in page.rows]
        pages, token = pages + 1, page.next_token
        if token is None:
            break
    want = [r.id for r in sorted(rows, key=lambda r: (r.created_at, r.id), reverse=True)]
    assert seen == want and pages == 3
    assert registry.page(flt, limit=4, with_total=True).total == 11
    exact = registry.page(flt, limit=11)
    assert len(exact.rows) == 11 and exact.next_token is None  # no empty trailing page


def test_page_tokens_are_checked(registry: Registry) -> None:
    registry.insert_tasks([_row(), _row()])
    token = registry.page(TaskFilter(owner_dn="/CN=ann"), limit=1).next_token
    assert token
    with pytest.raises(BadPageToken, match="other list criteria"):
        registry.page(TaskFilter(owner_dn="/CN=bob"), after=token)
    for bad in ("", "%%%", "bm90IGpzb24", token[:10], "A" * 300):
        with pytest.raises(BadPageToken) as info:
            registry.page(TaskFilter(owner_dn="/CN=ann"), after=bad)
        assert info.value.field == "page_token"


def test_records_read_what_get_many_reads(registry: Registry) -> None:
    rows = registry.insert_tasks([_row(request_id="a"), _row(tool="canny")])
    registry.transition(rows[0].id, S.REGISTERED, S.SUBMITTING, attempt=1)
    wanted = [r.id for r in rows] + [uuid.uuid4().hex]
    orm, plain = registry.get_many(wanted), registry.records(wanted)
    assert set(plain) == set(orm) == {r.id for r in rows}  # unknown ids are left out
    for task_id, row in orm.items():
        assert dict(plain[task_id]._mapping) == row.model_dump()

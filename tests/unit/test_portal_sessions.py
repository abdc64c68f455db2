"""The portal's server-side session store on SQLite: ids, sealing, expiry, ending."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import text

from gproc.services.portal.sessions import (
    SessionEnded,
    SessionStore,
    Submissions,
    csrf_ok,
    load_or_create_key,
)

PEM = (
    b"-----BEGIN CERTIFICATE-----\nMIIBproxy\n-----END CERTIFICATE-----\n"
    b"-----BEGIN PRIVATE KEY-----\nsecret\n"
)


def _store(tmp_path: Path, **limits: int) -> SessionStore:
    return SessionStore.open(f"sqlite:///{tmp_path / 'p.db'}", tmp_path / "portal.key", **limits)


def _new(store: SessionStore, hours: float = 1.0) -> str:
    return store.create(
        PEM,
        dn="/C=RO/O=GiSHEO/CN=alice",
        vo="testvo",
        fqans=("/testvo",),
        is_admin=False,
        proxy_not_after=datetime.now(UTC) + timedelta(hours=hours),
    )


def test_a_session_keeps_the_proxy_sealed_under_a_hashed_key(tmp_path: Path) -> None:
    store = _store(tmp_path)
    sid = _new(store)
    info = store.get(sid)
    assert info is not None and info.dn.endswith("CN=alice") and info.fqans == ("/testvo",)
    assert store.proxy(info) == PEM
    with store.engine.connect() as conn:
        key, sealed = conn.execute(text("SELECT key, proxy FROM portal_sessions")).one()
    assert key != sid and sid not in key and b"secret" not in sealed and b"PRIVATE" not in sealed
    assert _new(store) != sid  # ids are random
    assert (tmp_path / "portal.key").stat().st_mode & 0o777 == 0o600
    assert load_or_create_key(tmp_path / "portal.key") == load_or_create_key(
        tmp_path / "portal.key"
    )


def test_another_replica_with_the_same_key_reads_the_session(tmp_path: Path) -> None:
    one, two = _store(tmp_path), _store(tmp_path)
    sid = _new(one)
    info = two.get(sid)
    assert info is not None and two.proxy(info) == PEM
    one.destroy(sid)
    with pytest.raises(SessionEnded):
        two.proxy(info)
    assert two.get(sid) is None


def test_csrf_token_is_the_sessions(tmp_path: Path) -> None:
    store = _store(tmp_path)
    info = store.get(_new(store))
    assert info is not None
    assert csrf_ok(info, info.csrf)
    assert not csrf_ok(info, None) and not csrf_ok(info, "") and not csrf_ok(info, info.csrf[:-1])


@pytest.mark.parametrize("sid", [None, "", "unknown", "x" * 500])
def test_unknown_ids_have_no_session(tmp_path: Path, sid: str | None) -> None:
    assert _store(tmp_path).get(sid) is None


def test_sessions_end_with_their_proxy(tmp_path: Path) -> None:
    store = _store(tmp_path)
    sid = _new(store, hours=-0.01)  # the proxy has expired already
    assert store.get(sid) is None
    assert store.count() == 0  # the row, and the proxy in it, are gone


def test_idle_sessions_end(tmp_path: Path) -> None:
    store = _store(tmp_path, idle_s=1)
    sid, other = _new(store), _new(store)
    time.sleep(1.2)
    assert store.get(sid) is None
    assert store.purge() == 1 and store.count() == 0
    assert store.get(other) is None


def test_max_lifetime_caps_the_expiry(tmp_path: Path) -> None:
    store = _store(tmp_path, max_s=60)
    info = store.get(_new(store, hours=10))
    assert info is not None
    assert info.expires <= datetime.now(UTC) + timedelta(seconds=61)


def test_submissions_are_only_their_owners(tmp_path: Path) -> None:
    store = _store(tmp_path)
    subs = Submissions(store.engine)
    subs.record("a" * 32, "task", "/CN=alice", ["eo/roads"])
    assert subs.inputs("a" * 32, "/CN=alice") == ["eo/roads"]
    assert subs.inputs("a" * 32, "/CN=bob") == []

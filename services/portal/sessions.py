"""Server-side portal sessions in the gproc database (table ``portal_sessions``).

The browser holds only a random session id (the cookie); the row is keyed by the
id's SHA-256, so the table gives no usable cookie. The user's proxy is sealed with
Fernet under the portal's key (one key file shared by every replica) and is only
ever unsealed to call a service. A session ends at logout, when idle for
``idle_s``, at ``max_s`` after login, or when its proxy expires, whichever comes
first; an ended session's row (and with it the proxy) is deleted.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken
from sqlalchemy import delete, select, update
from sqlalchemy.engine import Engine

from gproc import migrations
from gproc.errors import NotAuthenticated
from gproc.portal_models import PortalSessionRow, PortalSubmissionRow
from gproc.registry import make_engine

TABLE = PortalSessionRow.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True)
class SessionInfo:
    """What a page may know of a session (never the proxy)."""

    key: str
    csrf: str
    dn: str
    vo: str | None
    fqans: tuple[str, ...]
    is_admin: bool
    expires: datetime


def session_key(session_id: str) -> str:
    """The row key of a session id (its SHA-256)."""
    return hashlib.sha256(session_id.encode("utf-8")).hexdigest()


_hash = session_key


def _now() -> datetime:
    return datetime.now(UTC)


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def load_or_create_key(path: Path) -> bytes:
    """The Fernet key in ``path``, created (mode 0600) when missing."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(Fernet.generate_key())
    return path.read_bytes().strip()


class SessionStore:
    """Sessions shared through one SQL database (SQLite or PostgreSQL)."""

    def __init__(
        self, engine: Engine, key: bytes, *, idle_s: int = 1800, max_s: int = 12 * 3600
    ) -> None:
        migrations.prepare(engine)
        self.engine = engine
        self._fernet = Fernet(key)
        self.idle = timedelta(seconds=idle_s)
        self.max = timedelta(seconds=max_s)

    @classmethod
    def open(cls, url: str, key_file: Path, **limits: int) -> SessionStore:
        return cls(make_engine(url), load_or_create_key(key_file), **limits)

    def create(
        self,
        proxy_pem: bytes,
        *,
        dn: str,
        vo: str | None,
        fqans: tuple[str, ...],
        is_admin: bool,
        proxy_not_after: datetime,
    ) -> str:
        """A new session (a new random id: never one the browser proposed); its id."""
        session_id = secrets.token_urlsafe(32)
        now = _now()
        row = {
            "key": _hash(session_id),
            "csrf": secrets.token_urlsafe(32),
            "dn": dn,
            "vo": vo,
            "fqans": json.dumps(list(fqans)),
            "is_admin": is_admin,
            "proxy": self._fernet.encrypt(proxy_pem),
            "created": now,
            "last_seen": now,
            "expires": min(now + self.max, _aware(proxy_not_after)),
        }
        with self.engine.begin() as conn:
            conn.execute(TABLE.insert().values(**row))
        return session_id

    def get(self, session_id: str | None) -> SessionInfo | None:
        """The live session of this id (its idle clock restarted), else None."""
        if not session_id or len(session_id) > 128:
            return None
        key = _hash(session_id)
        now = _now()
        with self.engine.begin() as conn:
            row = conn.execute(select(TABLE).where(TABLE.c.key == key)).mappings().first()
            if row is None:
                return None
            if _aware(row["expires"]) <= now or _aware(row["last_seen"]) + self.idle <= now:
                conn.execute(delete(TABLE).where(TABLE.c.key == key))
                return None
            conn.execute(update(TABLE).where(TABLE.c.key == key).values(last_seen=now))
        return SessionInfo(
            key=key,
            csrf=row["csrf"],
            dn=row["dn"],
            vo=row["vo"],
            fqans=tuple(json.loads(row["fqans"] or "[]")),
            is_admin=bool(row["is_admin"]),
            expires=_aware(row["expires"]),
        )

    def proxy(self, info: SessionInfo) -> bytes:
        """The session's proxy (PEM), for a call to a service; NotFound when ended."""
        with self.engine.connect() as conn:
            sealed = conn.execute(select(TABLE.c.proxy).where(TABLE.c.key == info.key)).scalar()
        if sealed is None:
            raise SessionEnded("the session has ended: sign in again")
        try:
            return self._fernet.decrypt(sealed)
        except InvalidToken:
            raise SessionEnded("the session cannot be read: sign in again") from None

    def destroy(self, session_id: str | None) -> None:
        """End a session: its row and the proxy in it are deleted."""
        if session_id:
            with self.engine.begin() as conn:
                conn.execute(delete(TABLE).where(TABLE.c.key == _hash(session_id)))

    def purge(self) -> int:
        """Delete every expired or idle session; how many."""
        now = _now()
        with self.engine.begin() as conn:
            result = conn.execute(
                delete(TABLE).where(
                    (TABLE.c.expires <= now) | (TABLE.c.last_seen <= now - self.idle)
                )
            )
        return int(result.rowcount or 0)

    def count(self) -> int:
        with self.engine.connect() as conn:
            return len(conn.execute(select(TABLE.c.key)).all())

    def close(self) -> None:
        self.engine.dispose()


def csrf_ok(info: SessionInfo, token: str | None) -> bool:
    """The form's token is this session's (constant-time compare)."""
    return bool(token) and hmac.compare_digest(info.csrf, token or "")


class SessionEnded(NotAuthenticated):
    """The session's row is gone (logged out or expired in another replica)."""

    code = "Client.SessionEnded"


SUBMISSIONS = PortalSubmissionRow.__table__  # type: ignore[attr-defined]


class Submissions:
    """The input datasets of each task or workflow the portal submitted (by owner)."""

    def __init__(self, engine: Engine) -> None:
        migrations.prepare(engine)
        self.engine = engine

    def record(self, ident: str, kind: str, dn: str, inputs: list[str]) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                SUBMISSIONS.insert().values(
                    id=ident, kind=kind, dn=dn, inputs=json.dumps(inputs), created=_now()
                )
            )

    def inputs(self, ident: str, dn: str) -> list[str]:
        """The recorded inputs, only for their owner (another user's id gives [])."""
        with self.engine.connect() as conn:
            row = conn.execute(
                select(SUBMISSIONS.c.inputs).where(
                    (SUBMISSIONS.c.id == ident) & (SUBMISSIONS.c.dn == dn)
                )
            ).scalar()
        return list(json.loads(row)) if row else []

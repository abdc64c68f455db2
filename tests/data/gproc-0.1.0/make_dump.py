"""Writes this folder's 0.1.0 database: run once with a gproc 0.1.0 tree first on the path.

    PYTHONPATH=<gproc-0.1.0 checkout> python make_dump.py <this folder>

The 0.1.0 registry and VO store write a SQLite database the way 0.1.0 did (their
own ``create_all``, no schema revision); then its tables are written out as DDL
for SQLite and PostgreSQL (compiled from the 0.1.0 models) and its rows as
portable INSERT statements (``data.sql``). Checked in, so the tests need no 0.1.0.
"""

from __future__ import annotations

import sqlite3
import sys
import tempfile
import uuid
from pathlib import Path

from sqlalchemy import Boolean, DateTime
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.schema import CreateIndex, CreateTable
from sqlmodel import SQLModel

from gproc.models import TaskRow
from gproc.registry import Registry
from gproc.states import TaskState as S
from gproc.vo import Actor, VoStore

ADMIN = "/C=RO/O=GPROC/CN=Vo Admin"
CA = "/C=RO/O=GPROC/CN=GPROC Test CA"


def _fill(url: str) -> None:
    reg = Registry(url)
    rows = [
        TaskRow(
            id=uuid.UUID(int=i).hex,
            client_request_id=f"req-{i}" if i % 2 else None,
            owner_dn="/C=RO/O=GPROC/CN=Alice" if i < 4 else "/C=RO/O=GPROC/CN=Bob O'Neil",
            owner_vo="eo",
            owner_fqans='["/eo/Role=NULL/Capability=NULL"]',
            tool="ndvi" if i % 3 else "canny",
            request_json='{"inputs":{"red":"file:///data/r.tif"},"params":{}}',
            plan_json='{"executable":"band","arguments":["ndvi"]}',
            state=str(S.REGISTERED),
        )
        for i in range(1, 7)
    ]
    reg.insert_tasks(rows)
    ids = [r.id for r in rows]
    reg.transition_many(ids[:4], S.REGISTERED, S.SUBMITTING, attempt=1)
    reg.transition_each(
        {t: {"job_id": f"42.{n}"} for n, t in enumerate(ids[:4])}, S.SUBMITTING, S.SUBMITTED
    )
    reg.transition(ids[0], S.SUBMITTED, S.RUNNING, kind="EXECUTE", detail="slot1@node")
    reg.transition(ids[0], S.RUNNING, S.COMPLETED, exit_code=0, outputs_json='[{"name":"o"}]')
    reg.transition(ids[1], S.SUBMITTED, S.HELD, hold_reason="disk quota", hold_code=34)
    reg.transition(ids[5], S.REGISTERED, S.CANCELLED, state_reason="user asked")
    reg.set_meta("tracker.event_log_cursor", "inode=12:offset=3456")
    reg.close()

    vo = VoStore(url, admins=[ADMIN])
    admin = Actor(ADMIN, CA)
    vo.create_vo(admin, "eo", "Earth observation")
    vo.create_group(admin, "eo", "/eo/sar", "radar")
    vo.create_role(admin, "eo", "analyst")
    vo.add_member(admin, "eo", "/C=RO/O=GPROC/CN=Alice", CA, "alice@example.org")
    vo.add_member(admin, "eo", "/C=RO/O=GPROC/CN=Bob O'Neil", CA)
    vo.grant(admin, "eo", "/C=RO/O=GPROC/CN=Alice", "/eo", "VO-Admin")
    vo.grant(admin, "eo", "/C=RO/O=GPROC/CN=Alice", "/eo/sar", "analyst")
    vo.suspend_member(admin, "eo", "/C=RO/O=GPROC/CN=Bob O'Neil", "left the project")
    vo.close()


def _literal(value: object, column: object) -> str:
    if value is None:
        return "NULL"
    if isinstance(column.type, Boolean):  # type: ignore[attr-defined]
        return "TRUE" if value else "FALSE"
    if isinstance(value, int) and not isinstance(column.type, DateTime):  # type: ignore[attr-defined]
        return str(value)
    return "'" + str(value).replace("'", "''") + "'"


def main(out: Path) -> None:
    db = Path(tempfile.mkdtemp()) / "gproc.db"
    _fill(f"sqlite:///{db}")
    tables = SQLModel.metadata.sorted_tables
    for name, dialect in (("sqlite", sqlite.dialect()), ("postgresql", postgresql.dialect())):
        ddl = []
        for table in tables:
            ddl.append(str(CreateTable(table).compile(dialect=dialect)).strip() + ";")
            for index in sorted(table.indexes, key=lambda i: str(i.name)):
                ddl.append(str(CreateIndex(index).compile(dialect=dialect)).strip() + ";")
        (out / f"schema.{name}.sql").write_text("\n\n".join(ddl) + "\n")
    con = sqlite3.connect(db)
    lines = []
    for table in tables:
        cols = [c.name for c in table.columns]
        order = ", ".join(c.name for c in table.primary_key.columns)
        query = f"SELECT {', '.join(cols)} FROM {table.name} ORDER BY {order}"  # noqa: S608
        for row in con.execute(query):
            values = ", ".join(_literal(v, table.c[c]) for v, c in zip(row, cols, strict=True))
            lines.append(f"INSERT INTO {table.name} ({', '.join(cols)}) VALUES ({values});")
    (out / "data.sql").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main(Path(sys.argv[1]))

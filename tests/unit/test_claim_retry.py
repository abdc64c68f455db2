"""A claim transaction PostgreSQL picked as a deadlock victim (SQLSTATE 40P01) was
rolled back whole, so ``claim_registered`` runs it again; other errors, and a
deadlock that keeps happening, reach the caller."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy.exc import OperationalError

from gproc.registry import DEADLOCK_RETRIES, Registry

pytestmark = pytest.mark.unit


class _Orig(Exception):
    def __init__(self, sqlstate: str) -> None:
        super().__init__(sqlstate)
        self.sqlstate = sqlstate


class FailingClaims(Registry):
    """A registry whose first ``failures`` claim transactions fail with ``sqlstate``."""

    def __init__(self, url: str, failures: int, sqlstate: str) -> None:
        super().__init__(url)
        self.failures, self.sqlstate, self.calls = failures, sqlstate, 0

    def _claim_registered(self, task_ids, owner, until):  # type: ignore[no-untyped-def]
        self.calls += 1
        if self.calls <= self.failures:
            raise OperationalError("SELECT ... FOR NO KEY UPDATE", {}, _Orig(self.sqlstate))
        return set(task_ids)


UNTIL = datetime(2030, 1, 1, tzinfo=UTC)


def test_a_deadlock_victim_is_run_again(tmp_path: Path) -> None:
    reg = FailingClaims(f"sqlite:///{tmp_path / 'g.db'}", 2, "40P01")
    assert reg.claim_registered(["b", "a"], "r1", UNTIL) == ["b", "a"]
    assert reg.calls == 3


def test_a_deadlock_every_time_reaches_the_caller(tmp_path: Path) -> None:
    reg = FailingClaims(f"sqlite:///{tmp_path / 'g.db'}", DEADLOCK_RETRIES, "40P01")
    with pytest.raises(OperationalError):
        reg.claim_registered(["a"], "r1", UNTIL)
    assert reg.calls == DEADLOCK_RETRIES


def test_another_database_error_is_not_retried(tmp_path: Path) -> None:
    reg = FailingClaims(f"sqlite:///{tmp_path / 'g.db'}", 1, "08006")  # connection failure
    with pytest.raises(OperationalError):
        reg.claim_registered(["a"], "r1", UNTIL)
    assert reg.calls == 1

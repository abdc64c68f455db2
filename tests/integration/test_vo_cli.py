"""``gproc vo`` on a local VO database: build, change, export, import, audit."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from gproc.services.cli import main
from gproc.settings import get_settings

CA = "/C=XX/O=gproc-test/CN=gproc Test CA"
ALICE = "/C=XX/O=gproc-test/OU=users/CN=alice"


@pytest.fixture
def gproc_vo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[CliRunner]:
    monkeypatch.setenv("GPROC_VO__DATABASE_URL", f"sqlite:///{tmp_path / 'vo.db'}")
    get_settings.cache_clear()
    yield CliRunner()
    get_settings.cache_clear()


def run(r: CliRunner, *args: str) -> str:
    res = r.invoke(main, ["vo", *args])
    assert res.exit_code == 0, res.output
    return res.output


def test_cli_round_trip(gproc_vo: CliRunner, tmp_path: Path) -> None:
    run(gproc_vo, "create", "clivo")
    run(gproc_vo, "group-add", "clivo", "/clivo/g")
    run(gproc_vo, "role-add", "clivo", "pilot")
    run(gproc_vo, "member-add", "clivo", ALICE, "--ca", CA)
    out = json.loads(
        run(gproc_vo, "grant", "clivo", ALICE, "/clivo/g", "--role", "pilot", "--json")
    )
    assert out["fqans"] == ["/clivo", "/clivo/g", "/clivo/g/Role=pilot"]
    run(gproc_vo, "suspend", "clivo", ALICE, "--reason", "test")
    assert "SUSPENDED (test)" in run(gproc_vo, "members", "clivo", "--search", "alice")
    export = tmp_path / "clivo.json"
    run(gproc_vo, "export", "clivo", "-o", str(export))
    run(gproc_vo, "remove", "clivo", ALICE)
    assert run(gproc_vo, "members", "clivo") == ""
    counts = json.loads(run(gproc_vo, "import", str(export)))
    assert counts["members_added"] == 1
    member = json.loads(run(gproc_vo, "members", "clivo", "--json"))
    assert member["suspended"] and member["fqans"] == out["fqans"]
    audit = [json.loads(x) for x in run(gproc_vo, "audit", "clivo", "--json").splitlines()]
    assert audit[-1]["action"] == "suspend-member"
    assert {a["actor"].split("/CN=")[0] for a in audit} == {"/O=gproc/OU=local"}
    res = gproc_vo.invoke(main, ["vo", "grant", "clivo", ALICE, "/other/g"])
    assert res.exit_code != 0 and "InvalidRequest" in res.output

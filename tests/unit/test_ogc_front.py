"""The OGC fronts' per-job options store and the chassis' untrusted-XML parse."""

from __future__ import annotations

from pathlib import Path

import pytest

from gproc.services.chassis.guard import UntrustedXml, parse_untrusted
from gproc.services.ogc.front import JobOptions, NoSuchJob


def test_job_options_round_trip_and_drop(tmp_path: Path) -> None:
    store = JobOptions(tmp_path / "opts")
    assert store.get("a" * 32) == {}
    store.put("a" * 32, {"modes": {"output": "reference"}, "raw": None})
    assert JobOptions(tmp_path / "opts").get("a" * 32)["modes"] == {"output": "reference"}
    store.put("b" * 32, {})  # nothing to keep: no file
    assert not (tmp_path / "opts" / f"{'b' * 32}.json").exists()
    store.drop("a" * 32)
    assert store.get("a" * 32) == {}


@pytest.mark.parametrize("jid", ["../x", "a/b", "", "x" * 65, "a b"])
def test_job_options_refuse_ids_that_are_not_job_ids(tmp_path: Path, jid: str) -> None:
    with pytest.raises(NoSuchJob):
        JobOptions(tmp_path).get(jid)


UNTRUSTED = [
    (b"<a><b/></a>", None),
    (b"<a>", "malformed XML"),
    (b'<!DOCTYPE a [<!ENTITY e "x">]><a>&e;</a>', "DTDs are not accepted"),
    (b'<!DOCTYPE a SYSTEM "http://127.0.0.1:1/x.dtd"><a/>', "network entity"),  # never fetched
    (b"<a>" * 9 + b"</a>" * 9, "deeper than 8"),
]


@pytest.mark.parametrize(("body", "refusal"), UNTRUSTED)
def test_parse_untrusted(body: bytes, refusal: str | None) -> None:
    if refusal is None:
        assert parse_untrusted(body, 8).tag == "a"
        return
    with pytest.raises(UntrustedXml) as info:
        parse_untrusted(body, 8)
    assert refusal in str(info.value)
    assert info.value.limit == ("deeper" in refusal)

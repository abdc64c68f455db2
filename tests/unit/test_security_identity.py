"""DN forms and FQAN parsing."""

from __future__ import annotations

import pytest

from gproc.security import pki
from gproc.security.identity import Fqan, grid_dn, normalise_grid_dn, rfc2253_dn, same_dn


def test_dn_forms() -> None:
    name = pki.name(("C", "XX"), ("O", "gproc-test"), ("OU", "users"), ("CN", "alice"))
    assert grid_dn(name) == "/C=XX/O=gproc-test/OU=users/CN=alice"
    assert rfc2253_dn(name) == "CN=alice,OU=users,O=gproc-test,C=XX"


def test_same_dn_ignores_key_case_and_aliases() -> None:
    assert same_dn("/C=XX/CN=a/Email=a@b", "/c=XX/cn=a/emailAddress=a@b")
    assert not same_dn("/C=XX/CN=a", "/C=XX/CN=b")
    assert not same_dn("C=XX,CN=a", "/C=XX/CN=a")  # not slash form


def test_values_with_slashes_stay_whole() -> None:
    assert normalise_grid_dn("/O=a/CN=host/vm.example") == (("o", "a"), ("cn", "host/vm.example"))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("/testvo", Fqan("testvo")),
        ("/testvo/Role=NULL/Capability=NULL", Fqan("testvo")),
        ("/testvo/grid/sub", Fqan("testvo", ("grid", "sub"))),
        ("/testvo/grid/Role=admin", Fqan("testvo", ("grid",), "admin")),
        ("/testvo/Role=admin/Capability=NULL", Fqan("testvo", (), "admin")),
    ],
)
def test_fqan_parse(text: str, expected: Fqan) -> None:
    assert Fqan.parse(text) == expected


@pytest.mark.parametrize(
    "bad",
    ["", "testvo", "/", "/testvo/Role=admin/grid", "/te st", "/testvo/Foo=bar", "/testvo//grid"],
)
def test_fqan_parse_refuses(bad: str) -> None:
    with pytest.raises(ValueError):
        Fqan.parse(bad)


def test_fqan_forms() -> None:
    fq = Fqan.parse("/testvo/grid/Role=NULL/Capability=NULL")
    assert str(fq) == "/testvo/grid" and fq.group == "/testvo/grid"
    assert fq.long == "/testvo/grid/Role=NULL/Capability=NULL"
    assert str(Fqan("testvo", (), "admin")) == "/testvo/Role=admin"
